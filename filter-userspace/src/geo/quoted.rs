//! Splitting a CSV line whose fields may be quoted (RFC 4180). IP2Location quotes every field
//! and GeoLite2 quotes names, and a name may hold a comma (`"Korea, Republic of"`), so a plain
//! split on commas would miscount the columns.

use super::error::Reason;

/// Splits `line` into `out` (cleared first), each field without its quotes and surrounding
/// blanks. A doubled quote inside a quoted field is left doubled: no field a loader reads
/// (numbers, networks, codes) can hold one.
pub(crate) fn split<'a>(line: &'a str, out: &mut Vec<&'a str>) -> Result<(), Reason> {
    out.clear();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_ascii_start();
        let Some(quoted) = trimmed.strip_prefix('"') else {
            match rest.split_once(',') {
                Some((field, after)) => {
                    out.push(field.trim_ascii());
                    rest = after;
                    continue;
                }
                None => {
                    out.push(rest.trim_ascii());
                    return Ok(());
                }
            }
        };
        let end = closing_quote(quoted).ok_or(Reason::Quoting)?;
        out.push(&quoted[..end]);
        let after = quoted[end + 1..].trim_ascii_start();
        if after.is_empty() {
            return Ok(());
        }
        rest = after.strip_prefix(',').ok_or(Reason::Quoting)?;
    }
}

/// The index of the quote that closes a field whose opening quote was just before `text`.
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    loop {
        let at = from + bytes.get(from..)?.iter().position(|&b| b == b'"')?;
        if bytes.get(at + 1) == Some(&b'"') {
            from = at + 2;
        } else {
            return Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<&str>, Reason> {
        let mut out = Vec::new();
        split(line, &mut out).map(|()| out)
    }

    #[test]
    fn splits_quoted_and_plain_fields() {
        assert_eq!(
            fields(r#""16777216","16777471","KR","Korea (Republic of)""#),
            Ok(vec!["16777216", "16777471", "KR", "Korea (Republic of)"])
        );
        assert_eq!(
            fields(r#"2921044,en,EU,Europe,BQ,"Bonaire, Sint Eustatius, and Saba",0"#),
            Ok(vec![
                "2921044",
                "en",
                "EU",
                "Europe",
                "BQ",
                "Bonaire, Sint Eustatius, and Saba",
                "0"
            ])
        );
        assert_eq!(fields("a,,b,"), Ok(vec!["a", "", "b", ""]));
        assert_eq!(fields(r#" "a" , b ,"""#), Ok(vec!["a", "b", ""]));
        assert_eq!(fields(r#""say ""hi""",x"#), Ok(vec![r#"say ""hi"""#, "x"]));
        assert_eq!(fields(""), Ok(vec![""]));
    }

    #[test]
    fn rejects_broken_quoting() {
        assert_eq!(fields(r#""1","2"#), Err(Reason::Quoting));
        assert_eq!(fields(r#""1"x,2"#), Err(Reason::Quoting));
        assert_eq!(fields(r#"""#), Err(Reason::Quoting));
    }
}
