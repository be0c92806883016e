//! The access token, kept in one type so it cannot be printed by accident.
//!
//! `Debug` and `Display` print `***`; the only way to the value is
//! [`AccessToken::expose`], used where the `Authorization` header is built.

use std::fmt;
use std::sync::Arc;

/// A Graph API access token. Cheap to clone; never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token, trimming surrounding white space (token files usually end in a newline).
    pub fn new(value: &str) -> Self {
        AccessToken(Arc::from(value.trim()))
    }

    /// The raw token, for the `Authorization: Bearer` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the token in `text` with `***`.
    ///
    /// Used on anything derived from a response body (error messages, decode
    /// errors), since a hostile or buggy server may echo the token back.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 || !text.contains(&*self.0) {
            return text.to_string();
        }
        text.replace(&*self.0, "***")
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let t = AccessToken::new(" EAAGsecret\n");
        assert_eq!(t.expose(), "EAAGsecret");
        assert_eq!(format!("{t:?} {t}"), "*** ***");
        assert_eq!(t.redact("bad token EAAGsecret!"), "bad token ***!");
        assert_eq!(t.redact("nothing here"), "nothing here");
    }
}
