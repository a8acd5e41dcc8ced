//! The `sanitize` rules client values must pass.
//!
//! As in Kitware's launcher, a rule is `inList` (the value must be one of a
//! list) or `regexp` (the value must match from its first character), and
//! a value that fails takes the rule's `default`. Differences, all
//! stricter: a regexp uses Rust's `regex` syntax, where `$` matches only at
//! the very end (Python's also matches before a final newline); a value
//! that is not a string fails a regexp (Python's launcher crashes on it).
//!
//! What is stricter still is where values go: this crate substitutes a
//! client value into a command line, an environment or a URL only when a
//! rule covers its key (see [`crate::sessions`]).
//!
//! ```
//! use serde_json::json;
//! use wslink_launcher::sanitize::{Rule, Sanitizer, Verdict};
//!
//! let rules = [(
//!     "file".to_owned(),
//!     Rule::from_json(&json!({"type": "regexp", "regexp": "^[a-z]+\\.vtk$", "default": "cone.vtk"})).unwrap(),
//! )];
//! let sanitizer = Sanitizer::new(rules.into_iter().collect());
//! assert_eq!(sanitizer.check("file", &json!("head.vtk")), Verdict::Accepted);
//! assert_eq!(
//!     sanitizer.check("file", &json!("../../etc/passwd")),
//!     Verdict::Replaced(json!("cone.vtk"))
//! );
//! assert_eq!(sanitizer.check("other", &json!("x")), Verdict::NoRule);
//! ```

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

/// One rule of `configuration.sanitize`.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `{"type": "inList", "list": [...], "default": ...}`
    InList {
        /// The values accepted as they are.
        list: Vec<Value>,
        /// What a value not in the list becomes.
        default: Value,
    },
    /// `{"type": "regexp", "regexp": "...", "default": ...}`
    Regexp {
        /// The expression, anchored at the start as Python's `re.match`.
        regex: Regex,
        /// The expression as written.
        source: String,
        /// What a value that does not match becomes.
        default: Value,
    },
}

/// What a rule made of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The value passed its rule.
    Accepted,
    /// The value failed its rule and is replaced by this default.
    Replaced(Value),
    /// No rule covers this key.
    NoRule,
}

/// What is wrong with a rule's definition.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The rule is not an object with a known `type`.
    #[error("a rule is {{\"type\": \"inList\", \"list\": [...], \"default\": ...}} or {{\"type\": \"regexp\", \"regexp\": \"...\", \"default\": ...}}; got {0}")]
    Shape(String),
    /// The rule has no `default`.
    #[error("the rule has no \"default\" (the value that replaces a failing one)")]
    NoDefault,
    /// The expression does not compile.
    #[error("the regexp does not compile: {0}")]
    Regex(#[from] regex::Error),
}

impl Rule {
    /// Reads a rule as written in the configuration.
    pub fn from_json(spec: &Value) -> Result<Rule, RuleError> {
        let shape = || RuleError::Shape(spec.to_string());
        let object = spec.as_object().ok_or_else(shape)?;
        let default = object.get("default").cloned().ok_or(RuleError::NoDefault)?;
        match object.get("type").and_then(Value::as_str) {
            Some("inList") => {
                let list = object
                    .get("list")
                    .and_then(Value::as_array)
                    .ok_or_else(shape)?;
                Ok(Rule::InList {
                    list: list.clone(),
                    default,
                })
            }
            Some("regexp") => {
                let source = object
                    .get("regexp")
                    .and_then(Value::as_str)
                    .ok_or_else(shape)?;
                let regex = Regex::new(&format!("^(?:{source})"))?;
                Ok(Rule::Regexp {
                    regex,
                    source: source.to_owned(),
                    default,
                })
            }
            _ => Err(shape()),
        }
    }

    /// Checks one value.
    pub fn check(&self, value: &Value) -> Verdict {
        let (ok, default) = match self {
            Rule::InList { list, default } => (list.contains(value), default),
            Rule::Regexp { regex, default, .. } => {
                (value.as_str().is_some_and(|s| regex.is_match(s)), default)
            }
        };
        if ok {
            Verdict::Accepted
        } else {
            Verdict::Replaced(default.clone())
        }
    }
}

/// All the rules, by client key.
#[derive(Debug, Clone, Default)]
pub struct Sanitizer {
    rules: BTreeMap<String, Rule>,
}

impl Sanitizer {
    /// The rules of `configuration.sanitize`.
    pub fn new(rules: BTreeMap<String, Rule>) -> Self {
        Sanitizer { rules }
    }

    /// Whether a rule covers `key`.
    pub fn has_rule(&self, key: &str) -> bool {
        self.rules.contains_key(key)
    }

    /// Checks the value a client sent for `key`.
    pub fn check(&self, key: &str, value: &Value) -> Verdict {
        match self.rules.get(key) {
            Some(rule) => rule.check(value),
            None => Verdict::NoRule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_compare_json_values() {
        let rule =
            Rule::from_json(&json!({"type": "inList", "list": ["a", 2], "default": "a"})).unwrap();
        assert_eq!(rule.check(&json!("a")), Verdict::Accepted);
        assert_eq!(rule.check(&json!(2)), Verdict::Accepted);
        assert_eq!(rule.check(&json!("2")), Verdict::Replaced(json!("a")));
        assert_eq!(rule.check(&json!(["a"])), Verdict::Replaced(json!("a")));
    }

    #[test]
    fn regexps_match_from_the_start_like_re_match() {
        let rule = Rule::from_json(&json!({"type": "regexp", "regexp": "[a-z]+", "default": "d"}))
            .unwrap();
        assert_eq!(
            rule.check(&json!("abc;rm")),
            Verdict::Accepted,
            "no $: a prefix is enough, as in Python"
        );
        assert_eq!(rule.check(&json!(";abc")), Verdict::Replaced(json!("d")));
        let strict =
            Rule::from_json(&json!({"type": "regexp", "regexp": "^[a-z]+$", "default": "d"}))
                .unwrap();
        assert_eq!(strict.check(&json!("abc\n")), Verdict::Replaced(json!("d")));
        assert_eq!(strict.check(&json!(12)), Verdict::Replaced(json!("d")));
        let alternatives =
            Rule::from_json(&json!({"type": "regexp", "regexp": "a|b", "default": "d"})).unwrap();
        assert_eq!(
            alternatives.check(&json!("xb")),
            Verdict::Replaced(json!("d"))
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(matches!(
            Rule::from_json(&json!({"type": "inList", "list": []})),
            Err(RuleError::NoDefault)
        ));
        assert!(matches!(
            Rule::from_json(&json!({"type": "glob", "default": 1})),
            Err(RuleError::Shape(_))
        ));
        assert!(matches!(
            Rule::from_json(&json!({"type": "regexp", "regexp": "(?<=a)b", "default": 1})),
            Err(RuleError::Regex(_))
        ));
    }
}
