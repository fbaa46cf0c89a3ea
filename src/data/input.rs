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

/// A reader that drops a leading UTF-8 byte-order mark, turns CRLF into LF, refuses over-long
/// lines, remembers whether it saw anything but whitespace, and notes where the newlines are
/// (the CSV reader's own line numbers are off for CRLF files).
struct Guarded<R> {
    prefix: Vec<u8>,
    prefix_pos: usize,
    inner: R,
    line: u64,
    run: usize,
    saw_content: bool,
    /// Bytes handed out so far.
    emitted: u64,
    /// Offsets of newlines handed out but not yet passed by a record start.
    newlines: std::collections::VecDeque<u64>,
    /// Bytes read and CRLF-normalised, not yet handed out.
    queue: std::collections::VecDeque<u8>,
    /// A `\r` seen last; dropped if a `\n` follows.
    pending_cr: bool,
    eof: bool,
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
            emitted: 0,
            newlines: std::collections::VecDeque::new(),
            queue: std::collections::VecDeque::new(),
            pending_cr: false,
            eof: false,
        })
    }
}

impl<R: Read> Guarded<R> {
    /// Reads a chunk into the queue, turning each CRLF into LF (a `\r` at the end of a chunk
    /// waits for the next byte).
    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = if self.prefix_pos < self.prefix.len() {
            let rest = &self.prefix[self.prefix_pos..];
            chunk[..rest.len()].copy_from_slice(rest);
            self.prefix_pos = self.prefix.len();
            rest.len()
        } else {
            self.inner.read(&mut chunk)?
        };
        if n == 0 {
            self.eof = true;
            if std::mem::take(&mut self.pending_cr) {
                self.queue.push_back(b'\r');
            }
            return Ok(());
        }
        for &b in &chunk[..n] {
            if std::mem::take(&mut self.pending_cr) && b != b'\n' {
                self.queue.push_back(b'\r');
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                self.queue.push_back(b);
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.queue.is_empty() && !self.eof {
            self.fill()?;
        }
        let n = buf.len().min(self.queue.len());
        for (slot, b) in buf.iter_mut().zip(self.queue.drain(..n)) {
            *slot = b;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                self.newlines.push_back(self.emitted + k as u64);
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
        self.emitted += n as u64;
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
    /// Newlines before the current record's start.
    newlines_passed: u64,
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
            newlines_passed: 0,
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
                    self.line = match self.record.position() {
                        Some(p) => self.line_at(p.byte()),
                        None => self.line + 1,
                    };
                }
                Ok(more)
            }
            Err(e) => Err(self.csv_error(e)),
        }
    }

    /// The 1-based line of a record starting at byte offset `byte` (offsets must not decrease
    /// between calls). The CSV reader may report a record as starting on a terminator it
    /// skips, so a newline at `byte` itself counts as passed.
    fn line_at(&mut self, byte: u64) -> u64 {
        let newlines = &mut self.reader.get_mut().newlines;
        while newlines.front().is_some_and(|&at| at <= byte) {
            newlines.pop_front();
            self.newlines_passed += 1;
        }
        self.newlines_passed + 1
    }

    fn csv_error(&mut self, e: csv::Error) -> DataError {
        let line = match e.position() {
            Some(p) => self.line_at(p.byte()),
            None => self.line + 1,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per call, to split the BOM across reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((&b, rest)), false) => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn bom_is_stripped_even_when_split_across_reads() {
        let dialect = Dialect {
            delimiter: b',',
            quoting: true,
        };
        let mut rec = Records::new(
            Trickle(b"\xef\xbb\xbfa,b\r\nc,d\n"),
            Path::new("x"),
            dialect,
        )
        .unwrap();
        assert!(rec.advance().unwrap());
        assert_eq!((rec.text(0), rec.line()), ("a".to_string(), 1));
        assert!(rec.advance().unwrap());
        assert_eq!((rec.text(1), rec.line()), ("d".to_string(), 2));
        assert!(!rec.advance().unwrap());
    }

    #[test]
    fn text_is_utf8_or_latin1() {
        assert_eq!(decode_text("Zoë".as_bytes()), "Zoë");
        assert_eq!(decode_text(b"Zo\xeb"), "Zoë");
        assert_eq!(decode_text(b"\xc1 k\xf6ldum"), "Á köldum");
    }
}
