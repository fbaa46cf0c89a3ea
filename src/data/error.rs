//! The one error type of the data layer: every failure names the file, the line, the field and
//! what was expected.
use std::path::PathBuf;

/// Where in an input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or the label given to an in-memory input).
    pub path: PathBuf,
    /// 1-based line number, when the problem is on a line.
    pub line: Option<u64>,
    /// 1-based field number and the field's name, when the problem is in one field.
    pub field: Option<(usize, &'static str)>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some((n, name)) = self.field {
            write!(f, ": field {n} ({name})")?;
        }
        Ok(())
    }
}

/// Errors of the data layer. Input errors carry a [`Location`] and say what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line or field does not hold what the format requires.
    #[error("{at}: expected {expected}, found {found}")]
    Malformed {
        /// Where.
        at: Location,
        /// What the format requires there.
        expected: String,
        /// What was there (quoted and shortened).
        found: String,
    },
    /// The input as a whole is unusable (empty, header only, no known files, ...).
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// A bundle is truncated, corrupted, of another version, or inconsistent.
    #[error("bundle: {0}")]
    Bundle(String),
    /// An argument given by the caller is out of its domain (not an input-file problem).
    #[error("invalid argument: {0}")]
    Argument(String),
}

impl DataError {
    /// A [`DataError::Malformed`] at `path:line`, field `field` (1-based) named `name`.
    pub(crate) fn field(
        path: &std::path::Path,
        line: u64,
        field: usize,
        name: &'static str,
        expected: impl Into<String>,
        found: &[u8],
    ) -> Self {
        DataError::Malformed {
            at: Location {
                path: path.to_path_buf(),
                line: Some(line),
                field: Some((field, name)),
            },
            expected: expected.into(),
            found: quote(found),
        }
    }

    /// A [`DataError::Malformed`] about a whole line.
    pub(crate) fn line(
        path: &std::path::Path,
        line: u64,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        DataError::Malformed {
            at: Location {
                path: path.to_path_buf(),
                line: Some(line),
                field: None,
            },
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// A [`DataError::Invalid`] about a file (and optionally a line).
    pub(crate) fn invalid(
        path: &std::path::Path,
        line: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        DataError::Invalid {
            at: Location {
                path: path.to_path_buf(),
                line,
                field: None,
            },
            message: message.into(),
        }
    }

    /// The location of an input error, if it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            DataError::Malformed { at, .. } | DataError::Invalid { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// Quotes raw field bytes for a message: lossy UTF-8, at most 40 characters.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        out.push_str("...");
    }
    format!("{out:?}")
}
