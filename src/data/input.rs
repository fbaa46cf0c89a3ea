//! Streaming record input shared by the parsers: BOM stripping, a cap on line length, CSV
//! records with line numbers, and field decoding (UTF-8, falling back to Latin-1).
use super::error::DataError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The longest physical line any parser accepts, in bytes. Longer lines are rejected, not cut.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Marker error raised inside the reader when a line exceeds [`MAX_LINE_BYTES`].
#[derive(Debug)]
struct LineTooLong {
    line: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} is longer than {MAX_LINE_BYTES} bytes",
            self.line
        )
    }
}

impl std::error::Error for LineTooLong {}

/// A reader that drops a leading UTF-8 byte-order mark, refuses over-long lines and remembers
/// whether it saw anything but whitespace.
struct Guarded<R> {
    prefix: Vec<u8>,
    prefix_pos: usize,
    inner: R,
    line: u64,
    run: usize,
    saw_content: bool,
}

impl<R: Read> Guarded<R> {
    fn new(mut inner: R) -> std::io::Result<Self> {
        let mut prefix = Vec::with_capacity(3);
        let mut buf = [0u8; 3];
        while prefix.len() < 3 {
            let n = inner.read(&mut buf[..3 - prefix.len()])?;
            if n == 0 {
                break;
            }
            prefix.extend_from_slice(&buf[..n]);
        }
        if prefix == [0xEF, 0xBB, 0xBF] {
            prefix.clear();
        }
        Ok(Guarded {
            prefix,
            prefix_pos: 0,
            inner,
            line: 1,
            run: 0,
            saw_content: false,
        })
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = if self.prefix_pos < self.prefix.len() {
            let rest = &self.prefix[self.prefix_pos..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.prefix_pos += n;
            n
        } else {
            self.inner.read(buf)?
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.run = 0;
            } else {
                self.run += 1;
                if !b.is_ascii_whitespace() {
                    self.saw_content = true;
                }
                if self.run > MAX_LINE_BYTES {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        LineTooLong { line: self.line },
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// How a file's records are separated and quoted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    pub delimiter: u8,
    pub quoting: bool,
}

/// A streaming source of records with their line numbers.
pub(crate) struct Records<R: Read> {
    path: PathBuf,
    reader: csv::Reader<Guarded<R>>,
    record: csv::ByteRecord,
    line: u64,
}

impl<R: Read> Records<R> {
    /// Wraps `inner`; `path` names it in error messages.
    pub fn new(inner: R, path: &Path, dialect: Dialect) -> Result<Self, DataError> {
        let guarded = Guarded::new(inner).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(dialect.delimiter)
            .quoting(dialect.quoting)
            .from_reader(guarded);
        Ok(Records {
            path: path.to_path_buf(),
            reader,
            record: csv::ByteRecord::new(),
            line: 0,
        })
    }

    /// The file name used in messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Advances to the next record; `Ok(false)` at the end of the input.
    pub fn advance(&mut self) -> Result<bool, DataError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(more) => {
                if more {
                    self.line = self.record.position().map_or(self.line + 1, |p| p.line());
                }
                Ok(more)
            }
            Err(e) => Err(self.csv_error(e)),
        }
    }

    fn csv_error(&self, e: csv::Error) -> DataError {
        let line = e.position().map_or(self.line + 1, |p| p.line());
        match e.into_kind() {
            csv::ErrorKind::Io(io) => {
                if let Some(long) = io.get_ref().and_then(|x| x.downcast_ref::<LineTooLong>()) {
                    DataError::line(
                        &self.path,
                        long.line,
                        format!("a line of at most {MAX_LINE_BYTES} bytes"),
                        "a longer line",
                    )
                } else {
                    DataError::Io {
                        path: self.path.clone(),
                        source: io,
                    }
                }
            }
            other => DataError::line(
                &self.path,
                line,
                "a well-formed delimited record",
                format!("{other:?}"),
            ),
        }
    }

    /// The current record.
    pub fn record(&self) -> &csv::ByteRecord {
        &self.record
    }

    /// The 1-based line on which the current record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Whether anything but whitespace (after a BOM) has been read so far.
    pub fn saw_content(&self) -> bool {
        self.reader.get_ref().saw_content
    }

    /// Fails unless the current record has exactly `n` fields.
    pub fn expect_fields(&self, n: usize, what: &str) -> Result<(), DataError> {
        let found = self.record.len();
        if found == n {
            Ok(())
        } else {
            Err(DataError::line(
                &self.path,
                self.line,
                format!("{n} fields ({what})"),
                format!("{found} field{}", if found == 1 { "" } else { "s" }),
            ))
        }
    }

    /// Raw bytes of field `i` (0-based) of the current record.
    pub fn raw(&self, i: usize) -> &[u8] {
        self.record.get(i).unwrap_or_default()
    }

    /// Field `i` (0-based) as text, trimmed, decoded as UTF-8 or else Latin-1.
    pub fn text(&self, i: usize) -> String {
        decode_text(trim(self.raw(i)))
    }

    /// Field `i` as a non-empty id (trimmed text).
    pub fn id(&self, i: usize, name: &'static str) -> Result<String, DataError> {
        let text = self.text(i);
        if text.is_empty() {
            Err(self.bad(i, name, "a non-empty id"))
        } else {
            Ok(text)
        }
    }

    /// Field `i` as a positive integer id, returned in canonical decimal form.
    pub fn int_id(&self, i: usize, name: &'static str) -> Result<String, DataError> {
        match std::str::from_utf8(trim(self.raw(i)))
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(v) if v > 0 => Ok(v.to_string()),
            _ => Err(self.bad(i, name, "a positive integer id")),
        }
    }

    /// Field `i` as a finite number.
    pub fn number(&self, i: usize, name: &'static str) -> Result<f32, DataError> {
        match std::str::from_utf8(trim(self.raw(i)))
            .ok()
            .and_then(|s| s.parse::<f32>().ok())
        {
            Some(v) if v.is_finite() => Ok(v),
            _ => Err(self.bad(i, name, "a finite number")),
        }
    }

    /// Field `i` as an integer.
    pub fn integer(&self, i: usize, name: &'static str) -> Result<i64, DataError> {
        std::str::from_utf8(trim(self.raw(i)))
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.bad(i, name, "an integer"))
    }

    /// A [`DataError::Malformed`] for field `i` (0-based) of the current record.
    pub fn bad(&self, i: usize, name: &'static str, expected: impl Into<String>) -> DataError {
        DataError::field(&self.path, self.line, i + 1, name, expected, self.raw(i))
    }
}

/// Strips ASCII whitespace (including a stray `\r`) from both ends.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Decodes text that is UTF-8 when valid, and Latin-1 (ISO-8859-1) otherwise.
pub fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Opens a file for reading, naming it in the error.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, DataError> {
    std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}
