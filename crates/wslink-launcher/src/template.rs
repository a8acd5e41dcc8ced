//! `${name}` and `$name` substitution, with the grammar of Python's
//! `string.Template.safe_substitute` (which Kitware's launcher uses).
//!
//! A name is ASCII: a letter or `_`, then letters, digits or `_`. `$$` gives
//! `$`. A name with no value, or a `$` that starts no name, stays as
//! written. Unlike Kitware's launcher, the text of a value is never
//! substituted again: a client value holding `${dataDir}` stays that text.
//!
//! ```
//! use wslink_launcher::template::substitute;
//!
//! let out = substitute("--port ${port} --data $dir/x $$HOME ${missing}", |name| match name {
//!     "port" => Some("9001".to_owned()),
//!     "dir" => Some("${port}".to_owned()),
//!     _ => None,
//! });
//! assert_eq!(out.text, "--port 9001 --data ${port}/x $HOME ${missing}");
//! assert_eq!(out.unresolved, ["missing"]);
//! ```

use serde_json::Value;

/// The result of [`substitute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substituted {
    /// The text with every known name replaced.
    pub text: String,
    /// Names that had no value (left as written).
    pub unresolved: Vec<String>,
    /// Names that had a value.
    pub used: Vec<String>,
}

enum Piece<'a> {
    Text(&'a str),
    Dollar,
    Name { name: &'a str, written: &'a str },
}

fn is_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_rest(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

fn pieces(template: &str) -> Vec<Piece<'_>> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let found = match bytes.get(i + 1) {
            Some(b'$') => Some((Piece::Dollar, i + 2)),
            Some(&b) if is_start(b) => {
                let mut end = i + 2;
                while end < bytes.len() && is_rest(bytes[end]) {
                    end += 1;
                }
                Some((
                    Piece::Name {
                        name: &template[i + 1..end],
                        written: &template[i..end],
                    },
                    end,
                ))
            }
            Some(b'{') if bytes.get(i + 2).is_some_and(|b| is_start(*b)) => {
                let mut end = i + 3;
                while end < bytes.len() && is_rest(bytes[end]) {
                    end += 1;
                }
                (bytes.get(end) == Some(&b'}')).then(|| {
                    (
                        Piece::Name {
                            name: &template[i + 2..end],
                            written: &template[i..=end],
                        },
                        end + 1,
                    )
                })
            }
            _ => None,
        };
        match found {
            Some((piece, next)) => {
                if text_start < i {
                    out.push(Piece::Text(&template[text_start..i]));
                }
                out.push(piece);
                i = next;
                text_start = next;
            }
            None => i += 1,
        }
    }
    if text_start < bytes.len() {
        out.push(Piece::Text(&template[text_start..]));
    }
    out
}

/// Replaces each `${name}` / `$name` by `lookup(name)`, in one pass.
pub fn substitute(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Substituted {
    let mut text = String::with_capacity(template.len());
    let mut unresolved = Vec::new();
    let mut used = Vec::new();
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Dollar => text.push('$'),
            Piece::Name { name, written } => match lookup(name) {
                Some(value) => {
                    text.push_str(&value);
                    used.push(name.to_owned());
                }
                None => {
                    text.push_str(written);
                    unresolved.push(name.to_owned());
                }
            },
        }
    }
    Substituted {
        text,
        unresolved,
        used,
    }
}

/// The names a template refers to, in order.
///
/// ```
/// assert_eq!(wslink_launcher::template::variables("$a-${b}$$c"), ["a", "b"]);
/// ```
pub fn variables(template: &str) -> Vec<String> {
    pieces(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Name { name, .. } => Some(name.to_owned()),
            _ => None,
        })
        .collect()
}

/// The text a JSON value becomes in a template: strings as they are,
/// numbers in decimal, and `True`, `False`, `None` as Python writes them.
///
/// ```
/// use serde_json::json;
/// use wslink_launcher::template::text_of;
///
/// assert_eq!(text_of(&json!("a b")), "a b");
/// assert_eq!(text_of(&json!(9001)), "9001");
/// assert_eq!(text_of(&json!(true)), "True");
/// ```
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(t: &str) -> String {
        substitute(t, |n| (n == "x").then(|| "X".to_owned())).text
    }

    #[test]
    fn python_template_grammar() {
        assert_eq!(sub("$x"), "X");
        assert_eq!(sub("${x}y"), "Xy");
        assert_eq!(sub("$xy"), "$xy");
        assert_eq!(sub("$x.y"), "X.y");
        assert_eq!(sub("$$x"), "$x");
        assert_eq!(sub("$"), "$");
        assert_eq!(sub("a$ b"), "a$ b");
        assert_eq!(sub("${x"), "${x");
        assert_eq!(sub("${1x}"), "${1x}");
        assert_eq!(sub("$1"), "$1");
        assert_eq!(sub("é$x€"), "éX€");
        assert_eq!(sub("${x}${x}"), "XX");
    }

    #[test]
    fn values_are_not_substituted_again() {
        let out = substitute("${a}", |n| match n {
            "a" => Some("${b}$b".to_owned()),
            "b" => Some("never".to_owned()),
            _ => None,
        });
        assert_eq!(out.text, "${b}$b");
        assert_eq!(out.used, ["a"]);
    }
}
