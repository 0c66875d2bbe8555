//! Credentials in URIs never leave percept: every text percept prints or
//! writes that may hold a URI (errors, logs at every level, `check`,
//! descriptions, GStreamer's own messages) goes through [`redact`].
//! A leaf: it imports nothing of percept.

use std::borrow::Cow;

/// What a password is replaced with.
pub const MASK: &str = "***";

/// `text` with the password of every `scheme://user:password@host` URI in it
/// replaced by [`MASK`] (`rtsp://user:***@host/...`); the user name stays,
/// so the URI can still be recognised. Userinfo is what RFC 3986 says it is:
/// the authority (after `://`, up to `/`, `?`, `#` or a character that
/// cannot be in a URI, such as space or a quote) up to its last `@`.
/// Text without such a URI is returned unchanged, without allocating.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0; // bytes of `text` already in `out`
    let mut search = 0;
    while let Some(i) = text[search..].find("://") {
        let start = search + i + 3;
        let end = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | '\\')
                    || c.is_whitespace()
                    || c.is_control()
            })
            .map_or(text.len(), |j| start + j);
        let authority = &text[start..end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            let pw_start = start + colon + 1;
            let pw_end = start + at;
            let s = out.get_or_insert_with(|| String::with_capacity(text.len()));
            s.push_str(&text[copied..pw_start]);
            s.push_str(MASK);
            copied = pw_end;
        }
        search = end.max(start);
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut s) => {
            s.push_str(&text[copied..]);
            Cow::Owned(s)
        }
    }
}

/// An [`std::io::Write`] that redacts what it is given, then writes it to
/// stderr (the logger's writer: tracing's `fmt` layer hands it one whole
/// event per `write`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_users_and_hosts_kept() {
        let cases = [
            (
                "rtsp://admin:S3cret@10.0.0.2:554/stream1",
                "rtsp://admin:***@10.0.0.2:554/stream1",
            ),
            (
                "uri `http://u:p%40ss@host/x.mp4` and rtsps://a:b:c@h",
                "uri `http://u:***@host/x.mp4` and rtsps://a:***@h",
            ),
            ("(rtsp://me:pw@cam)", "(rtsp://me:***@cam)"),
            (
                "location = \"rtsp://me:pw@cam\"",
                "location = \"rtsp://me:***@cam\"",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn text_without_credentials_is_borrowed_unchanged() {
        for text in [
            "rtsp://cam/stream",
            "rtsp://user@cam/stream",
            "file:///tmp/a:b@c.mp4",
            "no uri: a@b",
            "://",
            "",
        ] {
            assert!(
                matches!(redact(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_never_grows_a_password() {
        // Every split of a URI-like string, with multi-byte characters.
        let base = "é rtsp://ü:pässwörd@hôst/ä?x http://a:b@c";
        for i in 0..=base.len() {
            if !base.is_char_boundary(i) {
                continue;
            }
            let r = redact(&base[..i]);
            assert!(!r.contains("pässwörd@"), "{r}");
        }
    }
}
