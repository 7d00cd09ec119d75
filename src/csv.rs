//! CSV as keygate writes it (the new key's download, the audit export):
//! RFC 4180 records, and no cell a spreadsheet would run.
//!
//! A cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is
//! a formula to Excel, LibreOffice and Google Sheets, whatever column it is
//! in: `=cmd|'/Ccalc.exe'!A0` as a scope runs a program on the machine of
//! whoever opens the file. Every cell is prefixed with `'` when it begins
//! so (OWASP, "CSV Injection"), which spreadsheets show as text and hide.
//! Every writer goes through [`record`], so no column is forgotten.

use std::borrow::Cow;

/// What makes a cell a formula when it comes first.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One record: the cells made safe and quoted where needed, separated by
/// commas, ended by CRLF.
pub fn record<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    let mut line = cells
        .into_iter()
        .map(|c| cell(c.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// One cell: a formula defused with a leading `'`, then quoted (RFC 4180)
/// when it holds a comma, a quote or a line break.
pub fn cell(text: &str) -> Cow<'_, str> {
    let text = if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    };
    if text.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_formula_start_is_defused() {
        for (given, written) in [
            ("=1+1", "'=1+1"),
            ("=cmd|'/Ccalc.exe'!A0", "'=cmd|'/Ccalc.exe'!A0"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
        ] {
            assert_eq!(cell(given), written, "{given:?}");
        }
    }

    #[test]
    fn other_cells_are_left_alone_or_quoted() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a=1"), "a=1");
        assert_eq!(cell(" =1"), " =1");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_record_is_its_cells_and_crlf() {
        assert_eq!(record(["a", "=b", "c,d"]), "a,'=b,\"c,d\"\r\n");
        assert_eq!(record(Vec::<String>::new()), "\r\n");
    }
}
