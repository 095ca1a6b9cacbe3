//! The uploaded file: CSV parsing (quoting, embedded line breaks and `""` escapes by the `csv`
//! crate), the mapping of columns to fields, and each row as the contact it asks for.

use std::collections::{BTreeMap, BTreeSet};

use service::{ApiError, FieldError};

use crate::contacts::CreateContact;

/// The largest body an import accepts.
pub const MAX_BODY: usize = 50 * 1024 * 1024;
/// The most data rows one file may have.
pub const MAX_ROWS: usize = 100_000;

/// The fields a column can feed, besides custom fields (`custom.<key>`).
pub const FIELDS: [&str; 8] = [
    "full_name",
    "email",
    "whatsapp",
    "telegram_chat_id",
    "instagram_scoped_id",
    "instagram_user_id",
    "tags",
    "notes",
];

const CUSTOM: &str = "custom.";

/// A parsed file: trimmed headers and the rows that have any content.
#[derive(Debug, Clone)]
pub struct CsvFile {
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// One record of the file.
#[derive(Debug, Clone)]
pub struct Row {
    /// The header is row 1, as in a spreadsheet.
    pub number: i32,
    /// The line of the file the record starts on.
    pub line: i32,
    pub cells: Vec<String>,
}

impl CsvFile {
    /// Parses `bytes`; the error says what is wrong with the file as a whole.
    pub fn parse(bytes: &[u8]) -> Result<CsvFile, String> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if let Err(error) = std::str::from_utf8(bytes) {
            let before = bytes.get(..error.valid_up_to()).unwrap_or_default();
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            return Err(format!(
                "is not UTF-8 text (line {line}); save the file as CSV UTF-8"
            ));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(bytes);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| format!("is not CSV: {e}"))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        if headers.iter().all(String::is_empty) {
            return Err("has no header row: the first row must name the columns".into());
        }
        for (i, header) in headers.iter().enumerate() {
            if !header.is_empty() && headers.get(..i).is_some_and(|h| h.contains(header)) {
                return Err(format!("has two columns headed {header:?}"));
            }
        }
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        let mut number: i32 = 1;
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(format!("is not CSV: {e}")),
            }
            number = number.saturating_add(1);
            if record.iter().all(|cell| cell.trim().is_empty()) {
                continue;
            }
            if rows.len() == MAX_ROWS {
                return Err(format!(
                    "has more than {MAX_ROWS} rows; split it into several imports"
                ));
            }
            let line = i32::try_from(first_line(bytes, record.position())).unwrap_or(i32::MAX);
            rows.push(Row {
                number,
                line,
                cells: record.iter().map(str::to_owned).collect(),
            });
        }
        if rows.is_empty() {
            return Err("has a header but no rows".into());
        }
        Ok(CsvFile { headers, rows })
    }
}

/// The line a record starts on. The reader's position is where it began reading the record,
/// before the blank lines it skips, so those are counted here.
fn first_line(bytes: &[u8], position: Option<&csv::Position>) -> u64 {
    let Some(position) = position else { return 0 };
    let mut line = position.line();
    let start = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    for byte in bytes.get(start..).unwrap_or_default() {
        match byte {
            b'\n' => line += 1,
            b'\r' => {}
            _ => break,
        }
    }
    line
}

/// Which column feeds which target: target (`full_name`…, `custom.<key>`) → header. Kept with
/// the job as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub targets: BTreeMap<String, String>,
}

/// The header `wanted` names: the same text, else the one header equal to it ignoring case.
fn find<'a>(headers: &'a [String], wanted: &str) -> Option<&'a String> {
    let wanted = wanted.trim();
    if let Some(exact) = headers.iter().find(|h| *h == wanted) {
        return Some(exact);
    }
    let mut folded = headers.iter().filter(|h| h.eq_ignore_ascii_case(wanted));
    match (folded.next(), folded.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

impl Mapping {
    /// The defaults for `headers` (a column headed with a field's name, or `custom.<key>`)
    /// overridden by the `map.*` parameters (`target` → header; empty to ignore). 422 naming
    /// the parameter for an unknown target, a header no column has, or a custom field that is
    /// not among `custom_keys` (the organisation's definitions).
    pub fn resolve(
        headers: &[String],
        params: &[(String, String)],
        custom_keys: &BTreeSet<String>,
    ) -> Result<Mapping, ApiError> {
        let mut targets = BTreeMap::new();
        for header in headers {
            let lower = header.to_lowercase();
            if let Some(field) = FIELDS.iter().find(|f| **f == lower) {
                targets
                    .entry((*field).to_owned())
                    .or_insert_with(|| header.clone());
            } else if header.starts_with(CUSTOM) {
                targets
                    .entry(header.clone())
                    .or_insert_with(|| header.clone());
            }
        }
        let mut errors = Vec::new();
        for (target, header) in params {
            let param = format!("map.{target}");
            if !FIELDS.contains(&target.as_str()) && !target.starts_with(CUSTOM) {
                errors.push(FieldError::new(
                    param,
                    format!(
                        "is not something a column can feed: {} or custom.<key>",
                        FIELDS.join(", ")
                    ),
                ));
                continue;
            }
            if header.trim().is_empty() {
                targets.remove(target);
                continue;
            }
            match find(headers, header) {
                Some(found) => {
                    targets.insert(target.clone(), found.clone());
                }
                None => errors.push(FieldError::new(
                    param,
                    format!(
                        "no column is headed {:?}; the columns are {}",
                        header.trim(),
                        headers
                            .iter()
                            .map(|h| format!("{h:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        for (target, header) in &targets {
            if let Some(key) = target.strip_prefix(CUSTOM)
                && !custom_keys.contains(key)
            {
                errors.push(FieldError::new(
                    format!("map.{target}"),
                    format!(
                        "column {header:?}: {key:?} is not a custom field of this organisation; \
                         define it first, or ignore the column with map.{target}="
                    ),
                ));
            }
        }
        if !targets.contains_key("full_name") && !errors.iter().any(|e| e.field == "map.full_name")
        {
            errors.push(FieldError::new(
                "map.full_name",
                "no column feeds full_name: head one `full_name` or name it with map.full_name",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation { errors });
        }
        Ok(Mapping { targets })
    }

    /// Non-empty headers no target reads.
    pub fn ignored(&self, headers: &[String]) -> Vec<String> {
        headers
            .iter()
            .filter(|h| !h.is_empty() && !self.targets.values().any(|v| v == *h))
            .cloned()
            .collect()
    }

    /// The column positions of this mapping in a file with `headers`.
    pub fn columns(&self, headers: &[String]) -> Result<Columns, String> {
        let position = |header: &String| {
            headers
                .iter()
                .position(|h| h == header)
                .ok_or_else(|| format!("the file has no column {header:?} any more"))
        };
        let mut columns = Columns {
            width: headers.len(),
            ..Columns::default()
        };
        for (target, header) in &self.targets {
            let at = Some(position(header)?);
            match target.as_str() {
                "full_name" => columns.full_name = at,
                "email" => columns.email = at,
                "whatsapp" => columns.whatsapp = at,
                "telegram_chat_id" => columns.telegram_chat_id = at,
                "instagram_scoped_id" => columns.instagram_scoped_id = at,
                "instagram_user_id" => columns.instagram_user_id = at,
                "tags" => columns.tags = at,
                "notes" => columns.notes = at,
                other => match other.strip_prefix(CUSTOM) {
                    Some(key) => columns.custom.push((key.to_owned(), position(header)?)),
                    None => return Err(format!("unknown target {other:?}")),
                },
            }
        }
        Ok(columns)
    }
}

/// Where each target's cells are.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    full_name: Option<usize>,
    email: Option<usize>,
    whatsapp: Option<usize>,
    telegram_chat_id: Option<usize>,
    instagram_scoped_id: Option<usize>,
    instagram_user_id: Option<usize>,
    tags: Option<usize>,
    notes: Option<usize>,
    custom: Vec<(String, usize)>,
    width: usize,
}

/// The characters that make a spreadsheet read a cell as a formula; the export puts `'` before
/// a cell starting with one (query-api `contact_export`), and the import takes it away again.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

fn cells(n: usize) -> String {
    if n == 1 {
        "1 cell".into()
    } else {
        format!("{n} cells")
    }
}

impl Columns {
    /// The contact `row` asks for; a row with another number of cells than the header is
    /// rejected whole (field `row`).
    pub fn input(&self, row: &Row) -> Result<CreateContact, FieldError> {
        if row.cells.len() != self.width {
            return Err(FieldError::new(
                "row",
                format!(
                    "has {} where the header has {}",
                    cells(row.cells.len()),
                    cells(self.width)
                ),
            ));
        }
        let cell = |at: Option<usize>| {
            at.and_then(|i| row.cells.get(i))
                .map(|c| unescape(c.trim()))
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
        };
        Ok(CreateContact {
            full_name: cell(self.full_name).unwrap_or_default(),
            email: cell(self.email),
            whatsapp: cell(self.whatsapp),
            telegram_chat_id: cell(self.telegram_chat_id),
            instagram_scoped_id: cell(self.instagram_scoped_id),
            instagram_user_id: cell(self.instagram_user_id),
            tags: cell(self.tags)
                .map(|tags| {
                    tags.split(';')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            notes: cell(self.notes),
            custom_fields: self
                .custom
                .iter()
                .filter_map(|(key, at)| {
                    Some((key.clone(), serde_json::Value::String(cell(Some(*at))?)))
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> CsvFile {
        match CsvFile::parse(text.as_bytes()) {
            Ok(file) => file,
            Err(error) => panic!("{error}"),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn rows_keep_quoted_commas_quotes_and_line_breaks_and_are_numbered_like_a_spreadsheet() {
        let file = parsed(
            "\u{feff}full_name, Email\n\"Lovelace, Ada\",ada@example.com\n\n\"Say \"\"hi\"\"\nthere\",\n,\nlast,x\n",
        );
        assert_eq!(file.headers, strings(&["full_name", "Email"]));
        let rows: Vec<(i32, i32, Vec<String>)> = file
            .rows
            .iter()
            .map(|r| (r.number, r.line, r.cells.clone()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (2, 2, strings(&["Lovelace, Ada", "ada@example.com"])),
                (3, 4, strings(&["Say \"hi\"\nthere", ""])),
                (5, 7, strings(&["last", "x"])),
            ]
        );
    }

    #[test]
    fn files_without_header_rows_or_utf8_are_refused() {
        assert!(CsvFile::parse(b"").is_err());
        assert!(CsvFile::parse(b"full_name\n").is_err());
        assert!(CsvFile::parse(b"a,a\n1,2\n").is_err());
        let latin1 = CsvFile::parse(b"full_name\nJos\xe9\n");
        assert_eq!(
            latin1.err().as_deref(),
            Some("is not UTF-8 text (line 2); save the file as CSV UTF-8")
        );
    }

    #[test]
    fn mapping_defaults_to_field_headers_and_names_wrong_parameters() {
        let headers = strings(&["Full_Name", "email", "Phone", "custom.plan", "other"]);
        let params = vec![
            ("whatsapp".to_owned(), "phone".to_owned()),
            ("email".to_owned(), String::new()),
        ];
        let plan = BTreeSet::from(["plan".to_owned()]);
        let Ok(mapping) = Mapping::resolve(&headers, &params, &plan) else {
            panic!("a valid mapping");
        };
        let targets: Vec<(&str, &str)> = mapping
            .targets
            .iter()
            .map(|(t, h)| (t.as_str(), h.as_str()))
            .collect();
        assert_eq!(
            targets,
            [
                ("custom.plan", "custom.plan"),
                ("full_name", "Full_Name"),
                ("whatsapp", "Phone")
            ]
        );
        assert_eq!(mapping.ignored(&headers), strings(&["email", "other"]));

        let wrong = vec![
            ("nickname".to_owned(), "other".to_owned()),
            ("notes".to_owned(), "Missing".to_owned()),
            ("custom.tier".to_owned(), "other".to_owned()),
        ];
        let Err(ApiError::Validation { errors }) =
            Mapping::resolve(&strings(&["name", "other"]), &wrong, &plan)
        else {
            panic!("wrong parameters pass");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "map.nickname",
                "map.notes",
                "map.custom.tier",
                "map.full_name"
            ]
        );
    }

    #[test]
    fn cells_become_a_contact_without_the_exports_formula_guard() {
        let headers = strings(&["full_name", "tags", "custom.plan", "notes"]);
        let plan = BTreeSet::from(["plan".to_owned()]);
        let Ok(mapping) = Mapping::resolve(&headers, &[], &plan) else {
            panic!("a valid mapping");
        };
        let Ok(columns) = mapping.columns(&headers) else {
            panic!("columns");
        };
        let row = Row {
            number: 2,
            line: 2,
            cells: strings(&["'=Ada", " vip; ;lisbon ", "gold", " "]),
        };
        let Ok(input) = columns.input(&row) else {
            panic!("a full row");
        };
        assert_eq!(input.full_name, "=Ada");
        assert_eq!(input.tags, strings(&["vip", "lisbon"]));
        assert_eq!(input.custom_fields["plan"], "gold");
        assert_eq!(input.notes, None);
        let short = Row {
            cells: strings(&["Ada"]),
            ..row
        };
        let Err(error) = columns.input(&short) else {
            panic!("a short row passes");
        };
        assert_eq!(error.field, "row");
        assert_eq!(error.message, "has 1 cell where the header has 4 cells");
    }
}
