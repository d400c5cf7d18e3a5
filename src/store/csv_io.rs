//! Every CSV file the pipeline reads or writes goes through here, so all of them follow one set
//! of rules (RFC 4180, as the `csv` crate implements it):
//!
//! - fields are separated by `,` and records end with `\n`;
//! - a field is quoted when it holds a comma, a quote, `\r` or `\n`, and a quote inside it is
//!   doubled (`say "hi"` → `"say ""hi"""`); other fields are written as they are;
//! - a quoted field may span lines, so a reader must read records, not lines;
//! - records may have different lengths (`predictions.csv` lists up to five classes), and the
//!   header is an ordinary first record that each reader checks itself.
//!
//! These are the rules the run folder's files have always been written with, so run folders and
//! attack tables written before the `csv` crate was used read back unchanged.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};

pub use csv::StringRecord;

/// A writer with the rules above over `out`. Call `flush` (or drop it) when done.
pub fn writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

/// A reader with the rules above over `input`: every record, the header included.
pub fn reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

/// Opens `path` for [`reader`]; the error names the file.
pub fn open(path: &Path) -> Result<csv::Reader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(reader(BufReader::new(file)))
}

/// Every record of the file at `path`, the header included.
pub fn read_records(path: &Path) -> Result<Vec<StringRecord>> {
    open(path)?
        .records()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

/// Writes a CSV file atomically (see [`super::atomic`]): `fill` writes the records.
pub fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut csv::Writer<&mut BufWriter<File>>) -> Result<()>,
) -> Result<()> {
    super::atomic::write_with(path, |out| {
        let mut w = writer(out);
        fill(&mut w)?;
        w.flush()?;
        Ok(())
    })
}

/// The records as CSV text.
pub fn to_string<R, F>(records: impl IntoIterator<Item = R>) -> Result<String>
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut w = writer(Vec::new());
    for record in records {
        w.write_record(record)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes)?)
}

/// The fields of one record given as text (a line without its `\n`, or a quoted field's
/// several lines). Empty text is one empty field. Meant for tests and one-off lookups; files are
/// read with [`open`] or [`read_records`].
pub fn parse_record(text: &str) -> Vec<String> {
    let mut r = reader(text.as_bytes());
    match r.records().next() {
        Some(Ok(record)) => record.iter().map(String::from).collect(),
        _ => vec![String::new()],
    }
}

/// The 1-based line on which `record` starts (for error messages).
pub fn line_of(record: &StringRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_separators_quotes_and_line_breaks_round_trip() {
        let awkward = [
            "a,b",
            "say \"hi\"",
            "cr\rhere",
            "two\nlines",
            "crlf\r\n",
            "",
            "plain",
        ];
        let text = to_string([awkward, ["x"; 7]]).unwrap();
        assert_eq!(
            text,
            "\"a,b\",\"say \"\"hi\"\"\",\"cr\rhere\",\"two\nlines\",\"crlf\r\n\",,plain\n\
             x,x,x,x,x,x,x\n"
        );
        let records: Vec<StringRecord> = reader(text.as_bytes())
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].iter().collect::<Vec<_>>(), awkward);
        assert_eq!(
            line_of(&records[1]),
            4,
            "the first record spans lines 1 to 3"
        );
        assert_eq!(parse_record(text.lines().nth(3).unwrap()), ["x"; 7]);
    }

    #[test]
    fn records_may_differ_in_length_and_crlf_ends_records() {
        let records: Vec<StringRecord> = reader("a,b,c\r\n1\r\n,\n".as_bytes())
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        let fields: Vec<Vec<&str>> = records.iter().map(|r| r.iter().collect()).collect();
        assert_eq!(fields, [vec!["a", "b", "c"], vec!["1"], vec!["", ""]]);
        assert_eq!(parse_record(""), [""]);
    }
}
