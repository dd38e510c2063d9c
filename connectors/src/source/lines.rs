//! Reading lines of bounded length: a line over the limit is skipped to its end without
//! being held in memory, keeping only the first bytes its dead letter shows.

use crate::dead_letter::MAX_DEAD_LETTER_BYTES;
use std::io::{self, BufRead};

pub(crate) struct LineReader<R> {
    inner: R,
    limit: usize,
    /// The current line, reused between lines to keep its allocation.
    line: Vec<u8>,
}

/// One line, without its `\n` or `\r\n`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Complete(&'a [u8]),
    /// A line longer than the limit: its first bytes and its full length.
    TooLong {
        head: &'a [u8],
        len: u64,
    },
}

impl<R: BufRead> LineReader<R> {
    /// Lines longer than `limit` bytes (not counting the terminator) come back as
    /// [`Line::TooLong`].
    pub(crate) fn new(inner: R, limit: usize) -> LineReader<R> {
        LineReader {
            inner,
            limit,
            line: Vec::new(),
        }
    }

    /// The next line, or `None` at the end of the input. A final line without a newline
    /// is still a line.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.line.clear();
        // One byte of room beyond the limit for a '\r' that precedes the '\n'.
        let keep = self.limit.saturating_add(1);
        let mut len: u64 = 0;
        let mut last = None;
        let mut overflowed = false;
        let mut read_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if chunk.is_empty() {
                break;
            }
            read_any = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = match newline {
                Some(at) => chunk.get(..at).unwrap_or(chunk),
                None => chunk,
            };
            len = len.saturating_add(u64::try_from(part.len()).unwrap_or(u64::MAX));
            last = part.last().copied().or(last);
            if !overflowed && part.len() > keep.saturating_sub(self.line.len()) {
                overflowed = true;
                self.line.truncate(MAX_DEAD_LETTER_BYTES);
            }
            // Past the limit only the dead letter's excerpt is worth keeping.
            let cap = if overflowed {
                MAX_DEAD_LETTER_BYTES
            } else {
                keep
            };
            let take = cap.saturating_sub(self.line.len()).min(part.len());
            self.line
                .extend_from_slice(part.get(..take).unwrap_or(part));
            let used = part.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            if newline.is_some() {
                break;
            }
        }
        if !read_any {
            return Ok(None);
        }
        let carriage_return = last == Some(b'\r');
        let content_len = len.saturating_sub(u64::from(carriage_return));
        if carriage_return && u64::try_from(self.line.len()) == Ok(len) {
            // The buffer holds the whole line, '\r' included.
            self.line.pop();
        }
        if overflowed || content_len > u64::try_from(self.limit).unwrap_or(u64::MAX) {
            self.line.truncate(MAX_DEAD_LETTER_BYTES);
            return Ok(Some(Line::TooLong {
                head: &self.line,
                len: content_len,
            }));
        }
        Ok(Some(Line::Complete(&self.line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    /// Reads all lines through a tiny buffer, so that lines straddle many chunks.
    fn lines(input: &[u8], limit: usize) -> Vec<Result<String, (String, u64)>> {
        let reader = BufReader::with_capacity(3, Cursor::new(input.to_vec()));
        let mut lines = LineReader::new(reader, limit);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(match line {
                Line::Complete(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
                Line::TooLong { head, len } => {
                    Err((String::from_utf8_lossy(head).into_owned(), len))
                }
            });
        }
        out
    }

    #[test]
    fn splits_lf_crlf_and_a_final_line_without_newline() {
        let got = lines(b"one\r\ntwo\n\nthree", 100);
        assert_eq!(
            got,
            [
                Ok("one".into()),
                Ok("two".into()),
                Ok("".into()),
                Ok("three".into())
            ]
        );
        assert!(lines(b"", 100).is_empty());
        assert_eq!(lines(b"\n", 100), [Ok(String::new())]);
    }

    #[test]
    fn lines_over_the_limit_are_skipped_with_their_length() {
        let got = lines(b"0123456789\n01234567890\r\nok\n0123456789\r\n", 10);
        assert_eq!(
            got,
            [
                Ok("0123456789".into()),
                Err(("01234567890".into(), 11)),
                Ok("ok".into()),
                Ok("0123456789".into()),
            ]
        );
    }

    #[test]
    fn a_too_long_line_keeps_only_a_prefix() {
        let mut input = vec![b'a'; MAX_DEAD_LETTER_BYTES * 3];
        input.extend_from_slice(b"\nnext");
        let got = lines(&input, 100);
        let expected_len = u64::try_from(MAX_DEAD_LETTER_BYTES * 3).unwrap();
        assert_eq!(
            got,
            [
                Err(("a".repeat(MAX_DEAD_LETTER_BYTES), expected_len)),
                Ok("next".into())
            ]
        );
    }
}
