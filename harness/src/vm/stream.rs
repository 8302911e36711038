//! The guest-to-host stream on the second serial port: framed records, so
//! results files arrive as they grow and a guest that dies mid-run still
//! leaves every byte it sent.
//!
//! Records: `TB:FILE <path> <offset> <len>\n<len bytes>` cuts the file to
//! `offset` bytes and appends the payload (an append when offset is the
//! file's length; a rewrite from the first changed byte otherwise);
//! `TB:EXIT <code>\n` is the inner command's exit code;
//! `TB:ERROR <kind> <text>\n` is a guest-side failure of a [`GuestErrorKind`]
//! (a kernel option missing is the user's to fix; a setup failure is not).
//! The guest sets the port to raw mode, so bytes pass unchanged.

use std::collections::BTreeMap;

pub fn file_record(path: &str, offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("TB:FILE {path} {offset} {}\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

pub fn exit_record(code: i32) -> Vec<u8> {
    format!("TB:EXIT {code}\n").into_bytes()
}

/// What went wrong inside the guest, as the host must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestErrorKind {
    /// The kernel lacks an option the experiment needs: bad input (the
    /// `--kernel` given), exit 2.
    KernelConfig,
    /// The guest could not set up or start the inner command: a failure.
    Setup,
}

impl GuestErrorKind {
    fn word(self) -> &'static str {
        match self {
            GuestErrorKind::KernelConfig => "kernel-config",
            GuestErrorKind::Setup => "setup",
        }
    }
}

/// A guest-side failure: its kind, and the text for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub text: String,
}

impl GuestError {
    pub fn setup(text: impl Into<String>) -> GuestError {
        GuestError {
            kind: GuestErrorKind::Setup,
            text: text.into(),
        }
    }
}

/// Any other guest-side message is a setup failure.
impl From<String> for GuestError {
    fn from(text: String) -> GuestError {
        GuestError::setup(text)
    }
}

impl std::fmt::Display for GuestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

pub fn error_record(e: &GuestError) -> Vec<u8> {
    format!("TB:ERROR {} {}\n", e.kind.word(), e.text.replace('\n', " ")).into_bytes()
}

/// Everything a stream carried.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub files: BTreeMap<String, Vec<u8>>,
    pub exit: Option<i32>,
    pub errors: Vec<GuestError>,
    /// Set when the stream ended inside a record (guest died mid-write).
    pub truncated: bool,
}

pub fn decode(mut data: &[u8]) -> Received {
    let mut r = Received::default();
    while !data.is_empty() {
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            r.truncated = true;
            break;
        };
        let line = String::from_utf8_lossy(&data[..nl]).into_owned();
        data = &data[nl + 1..];
        if let Some(rest) = line.strip_prefix("TB:FILE ") {
            let mut parts = rest.rsplitn(3, ' ');
            let len: Option<usize> = parts.next().and_then(|l| l.parse().ok());
            let offset: Option<usize> = parts.next().and_then(|l| l.parse().ok());
            let (Some(len), Some(offset), Some(path)) = (len, offset, parts.next()) else {
                r.truncated = true;
                break;
            };
            let take = len.min(data.len());
            let file = r.files.entry(path.to_string()).or_default();
            file.truncate(offset);
            file.extend_from_slice(&data[..take]);
            data = &data[take..];
            if take < len {
                r.truncated = true;
            }
        } else if let Some(code) = line.strip_prefix("TB:EXIT ") {
            r.exit = code.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("TB:ERROR ") {
            let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = [GuestErrorKind::KernelConfig, GuestErrorKind::Setup]
                .into_iter()
                .find(|k| k.word() == word);
            r.errors.push(match kind {
                Some(kind) => GuestError {
                    kind,
                    text: text.to_string(),
                },
                // A guest of another build: its whole text, as a failure.
                None => GuestError::setup(rest),
            });
        }
        // Anything else (noise before the port went raw) is skipped.
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_append_and_exit_is_read() {
        let mut s = Vec::new();
        s.extend(file_record("samples.csv", 0, b"a,b\n"));
        s.extend(file_record("system.json", 0, b"{\"v\": []}"));
        s.extend(file_record("samples.csv", 4, b"1,2\n"));
        s.extend(file_record("system.json", 7, b"1]}"));
        s.extend(error_record(&GuestError {
            kind: GuestErrorKind::KernelConfig,
            text: "no\nnewlines".into(),
        }));
        s.extend(exit_record(0));
        let r = decode(&s);
        assert_eq!(r.files["samples.csv"], b"a,b\n1,2\n");
        assert_eq!(r.files["system.json"], b"{\"v\": [1]}");
        assert_eq!(r.errors[0].kind, GuestErrorKind::KernelConfig);
        assert_eq!(r.errors[0].text, "no newlines");
        assert_eq!(r.exit, Some(0));
        assert!(!r.truncated);
    }

    #[test]
    fn a_stream_cut_mid_record_keeps_what_arrived() {
        let mut s = file_record("samples.csv", 0, b"row1\n");
        s.extend(file_record("samples.csv", 5, b"row2\nrow3\n"));
        s.truncate(s.len() - 5);
        let r = decode(&s);
        assert_eq!(r.files["samples.csv"], b"row1\nrow2\n");
        assert!(r.truncated);
        assert_eq!(r.exit, None);
    }
}
