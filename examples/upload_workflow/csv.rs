//! Reading ids out of text: a free-form list (the text box) and a CSV file.

/// Splits a free-form list: values separated by commas, semicolons, newlines or spaces.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(|v| unquote(v.trim()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parses a CSV file, with or without a header row. A first row with no valid id is a
/// header: then the values are the `id` (or `ids`) column if there is one, else the first
/// column. Without a header, every cell is a value. Returns the values and the header.
pub fn parse_csv(text: &str) -> (Vec<String>, Option<Vec<String>>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = text
        .lines()
        .map(csv_cells)
        .filter(|cells| cells.iter().any(|c| !c.is_empty()));
    let Some(first) = rows.next() else {
        return (Vec::new(), None);
    };
    if first.iter().any(|c| parse_id(c).is_some()) {
        let values = std::iter::once(first)
            .chain(rows)
            .flatten()
            .filter(|c| !c.is_empty())
            .collect();
        return (values, None);
    }
    let column = first
        .iter()
        .position(|c| c.eq_ignore_ascii_case("id") || c.eq_ignore_ascii_case("ids"))
        .unwrap_or(0);
    let values = rows
        .filter_map(|mut row| (column < row.len()).then(|| row.swap_remove(column)))
        .filter(|c| !c.is_empty())
        .collect();
    (values, Some(first))
}

/// An id is a whole number from 0 to 2^63 - 1, written with ASCII digits only.
pub fn parse_id(v: &str) -> Option<i64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// The cells of one CSV line: commas (or semicolons) outside double quotes separate; `""`
/// inside quotes is a quote.
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',' | ';', false) => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            (c, _) => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .trim()
        .to_owned()
}
