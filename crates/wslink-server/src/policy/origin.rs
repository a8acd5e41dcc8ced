//! Which web pages may open a WebSocket to the server.
//!
//! Browsers attach an `Origin` header to every WebSocket upgrade and do not
//! apply the same-origin policy to WebSockets, so without a check any page
//! a user visits can connect to their `localhost:8080` and try the
//! well-known default secret. Clients that are not browsers send no
//! `Origin`; they are always let through (the secret still applies).

use std::fmt;

/// The origins allowed to open a WebSocket: any (the default, as Python's
/// server), the page's own (`same-origin`: the `Origin` names the host the
/// request was sent to), a list, or the page's own plus a list.
///
/// ```
/// use wslink_server::AllowedOrigins;
///
/// let policy: AllowedOrigins = "same-origin, https://app.example.org".parse().unwrap();
/// let host = Some("127.0.0.1:8080");
/// assert!(policy.allows(Some("http://127.0.0.1:8080"), host));
/// assert!(policy.allows(Some("https://APP.example.org:443"), host));
/// assert!(!policy.allows(Some("https://evil.example"), host));
/// assert!(policy.allows(None, host)); // not a browser
///
/// assert!("ftp://x".parse::<AllowedOrigins>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    same_origin: bool,
    /// Normalised `scheme://host[:port]`, default ports left out.
    list: Vec<String>,
}

/// An origin in an allow-list that is not `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid origin {given:?}: {reason} (expected e.g. https://example.org:8443, \"same-origin\" or \"*\")")]
pub struct OriginError {
    given: String,
    reason: &'static str,
}

impl Default for AllowedOrigins {
    /// Every origin, as Kitware's server: existing deployments keep working.
    fn default() -> Self {
        AllowedOrigins::any()
    }
}

impl AllowedOrigins {
    /// Every origin: what Kitware's server does.
    pub fn any() -> Self {
        AllowedOrigins {
            any: true,
            ..Self::none()
        }
    }

    /// No browser page at all (non-browser clients still connect).
    pub fn none() -> Self {
        AllowedOrigins {
            any: false,
            same_origin: false,
            list: Vec::new(),
        }
    }

    /// Only pages served from the host the upgrade was sent to: the
    /// natural choice when the server serves the app itself (`--content`).
    pub fn same_origin() -> Self {
        AllowedOrigins {
            same_origin: true,
            ..Self::none()
        }
    }

    /// Adds an origin such as `https://app.example.org`.
    pub fn with(mut self, origin: &str) -> Result<Self, OriginError> {
        self.list.push(normalise(origin)?);
        self.any = false;
        Ok(self)
    }

    /// Whether a request with this `Origin` header, sent to `host` (its
    /// `Host` header), may upgrade.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let Ok(origin) = normalise(origin) else {
            // "null" (file:// pages, sandboxed frames) and other odd
            // values only pass an explicit "*".
            return false;
        };
        if self.list.contains(&origin) {
            return true;
        }
        self.same_origin
            && host.is_some_and(|host| {
                let authority = origin.split_once("://").map_or("", |(_, a)| a);
                let default_port = if origin.starts_with("https") {
                    ":443"
                } else {
                    ":80"
                };
                let host = host.to_ascii_lowercase();
                authority == host || format!("{authority}{default_port}") == host
            })
    }

    /// Whether every origin is allowed.
    pub fn is_any(&self) -> bool {
        self.any
    }
}

/// `scheme://host[:port]` in lower case, without a default port.
fn normalise(origin: &str) -> Result<String, OriginError> {
    let err = |reason| OriginError {
        given: origin.to_owned(),
        reason,
    };
    let lower = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or(err("no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(err("the scheme must be http or https"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(err(
            "an origin is a scheme, a host and a port, nothing more",
        ));
    }
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(authority);
    Ok(format!("{scheme}://{authority}"))
}

impl std::str::FromStr for AllowedOrigins {
    type Err = OriginError;

    /// Parses the command line's form: `*`, or a comma-separated list of
    /// origins and `same-origin`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = AllowedOrigins::none();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "*" => return Ok(AllowedOrigins::any()),
                "same-origin" => policy.same_origin = true,
                origin => policy = policy.with(origin)?,
            }
        }
        Ok(policy)
    }
}

impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("*");
        }
        let mut items: Vec<&str> = Vec::new();
        if self.same_origin {
            items.push("same-origin");
        }
        items.extend(self.list.iter().map(String::as_str));
        if items.is_empty() {
            return f.write_str("(no browser origin)");
        }
        f.write_str(&items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lets_everyone_in_as_python_does() {
        let any = AllowedOrigins::any();
        assert!(any.allows(Some("https://evil.example"), Some("localhost:8080")));
        assert!(any.allows(Some("null"), None));
    }

    #[test]
    fn same_origin_compares_with_the_host_header() {
        let same = AllowedOrigins::same_origin();
        let host = Some("localhost:8080");
        assert!(same.allows(Some("http://localhost:8080"), host));
        assert!(same.allows(Some("http://LOCALHOST:8080/"), host));
        assert!(!same.allows(Some("http://localhost:8081"), host));
        assert!(
            !same.allows(Some("http://127.0.0.1:8080"), host),
            "another name is another origin"
        );
        assert!(!same.allows(Some("null"), host));
        assert!(!same.allows(Some("http://localhost:8080"), None));
        // Default ports appear in one header and not the other.
        assert!(same.allows(Some("https://example.org"), Some("example.org:443")));
        assert!(same.allows(Some("http://example.org:80"), Some("example.org")));
    }

    #[test]
    fn lists_parse_and_refuse_what_is_not_an_origin() {
        let p: AllowedOrigins = "https://a.example, http://b.example:8080".parse().unwrap();
        assert!(p.allows(Some("https://a.example:443"), None));
        assert!(p.allows(Some("http://b.example:8080"), None));
        assert!(!p.allows(Some("http://a.example"), None), "scheme matters");
        assert_eq!(p.to_string(), "https://a.example, http://b.example:8080");
        for bad in [
            "a.example",
            "ftp://a",
            "https://a/path",
            "https://",
            "https://u@a",
        ] {
            let err = bad.parse::<AllowedOrigins>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!("*".parse::<AllowedOrigins>().unwrap().is_any());
        assert_eq!(
            "".parse::<AllowedOrigins>().unwrap(),
            AllowedOrigins::none()
        );
    }
}
