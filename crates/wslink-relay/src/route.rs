//! `--proxy-route` patterns, read as aiohttp reads a route: literal text
//! with `{name}` (one path segment) or `{name:regex}` placeholders.

use std::collections::HashMap;

use regex::Regex;

use crate::RelayError;

/// A compiled route pattern such as `/proxy/{port}`.
#[derive(Debug, Clone)]
pub struct Route {
    pattern: String,
    regex: Regex,
}

impl Route {
    /// Compiles a pattern; `{name}` matches one non-empty path segment,
    /// `{name:regex}` what the regex matches.
    ///
    /// ```
    /// let route = wslink_relay::Route::parse("/proxy/{port}").unwrap();
    /// let vars = route.matches("/proxy/9001").unwrap();
    /// assert_eq!(vars["port"], "9001");
    /// assert!(route.matches("/proxy/a/b").is_none());
    /// ```
    pub fn parse(pattern: &str) -> Result<Route, RelayError> {
        let bad = |why: &str| RelayError::Route {
            pattern: pattern.to_owned(),
            why: why.to_owned(),
        };
        if !pattern.starts_with('/') {
            return Err(bad("a route starts with '/'"));
        }
        let mut re = String::from("^");
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            re.push_str(&regex::escape(&rest[..open]));
            let close = rest[open..]
                .find('}')
                .map(|i| open + i)
                .ok_or_else(|| bad("'{' without '}'"))?;
            let inner = &rest[open + 1..close];
            let (name, expr) = match inner.split_once(':') {
                Some((name, expr)) => (name, expr.to_owned()),
                None => (inner, "[^{}/]+".to_owned()),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad("a placeholder name is letters, digits and '_'"));
            }
            re.push_str(&format!("(?P<{name}>{expr})"));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(bad("'}' without '{'"));
        }
        re.push_str(&regex::escape(rest));
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| bad(&e.to_string()))?;
        Ok(Route {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// The placeholders' values if `path` matches the whole pattern.
    pub fn matches(&self, path: &str) -> Option<HashMap<String, String>> {
        let caps = self.regex.captures(path)?;
        Some(
            self.regex
                .capture_names()
                .flatten()
                .filter_map(|n| caps.name(n).map(|m| (n.to_owned(), m.as_str().to_owned())))
                .collect(),
        )
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_literals() {
        let r = Route::parse("/proxy/{host}/{port:\\d+}/{path:.*}").unwrap();
        let v = r.matches("/proxy/h.example/9000/a/ws").unwrap();
        assert_eq!(
            (&*v["host"], &*v["port"], &*v["path"]),
            ("h.example", "9000", "a/ws")
        );
        assert!(r.matches("/proxy/h/x/ws").is_none());
        let lit = Route::parse("/a.b").unwrap();
        assert!(lit.matches("/a.b").is_some() && lit.matches("/axb").is_none());
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in ["proxy", "/p/{x", "/p/x}", "/p/{}", "/p/{a b}", "/p/{x:(}"] {
            assert!(Route::parse(p).is_err(), "{p}");
        }
    }
}
