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

impl AccessToken {
    /// Replaces every occurrence of the token in a response body with `***`,
    /// before anything (label values included) is taken from it.
    pub fn redact_bytes<'b>(&self, body: &'b [u8]) -> std::borrow::Cow<'b, [u8]> {
        let t = self.0.as_bytes();
        if t.len() < 4 || !contains(body, t) {
            return std::borrow::Cow::Borrowed(body);
        }
        let mut out = Vec::with_capacity(body.len());
        let mut rest = body;
        while let Some(i) = find(rest, t) {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(b"***");
            rest = &rest[i + t.len()..];
        }
        out.extend_from_slice(rest);
        std::borrow::Cow::Owned(out)
    }
}

/// Where `needle` first occurs in `hay` (a vectorised search: every
/// response body is searched for the token).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
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
    fn bodies_are_redacted_everywhere_the_token_appears() {
        let t = AccessToken::new("EAAGsecret");
        assert_eq!(
            &*t.redact_bytes(br#"{"a":"EAAGsecret","b":"xEAAGsecretEAAGsecret","c":"EAAG"}"#),
            br#"{"a":"***","b":"x******","c":"EAAG"}"#
        );
        assert!(matches!(
            t.redact_bytes(b"clean"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn never_printed() {
        let t = AccessToken::new(" EAAGsecret\n");
        assert_eq!(t.expose(), "EAAGsecret");
        assert_eq!(format!("{t:?} {t}"), "*** ***");
        assert_eq!(t.redact("bad token EAAGsecret!"), "bad token ***!");
        assert_eq!(t.redact("nothing here"), "nothing here");
    }
}
