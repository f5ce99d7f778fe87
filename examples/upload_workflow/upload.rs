//! Reading the upload form (multipart): the set name, the text box and CSV files, within
//! the limits.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::Multipart;
use axum::http::StatusCode;

use super::csv::{parse_csv, split_list};
use super::id_sets::shorten;
use super::limits::{MAX_PARTS, MAX_VALUES};
use super::pages::count;
use super::problem::Problem;

/// The upload form as sent: the set name (not checked yet) and every value, with where
/// each batch of values came from.
#[derive(Debug, Default)]
pub struct UploadForm {
    /// The `name` field.
    pub name: Option<String>,
    /// Every value of the text box and the files, in order.
    pub values: Vec<String>,
    /// One line per text box or file, for the review page.
    pub sources: Vec<String>,
}

/// Reads the multipart form. Unknown fields are ignored (and bounded by the body limit);
/// an empty file input (no file chosen) is skipped.
pub async fn read_upload_form(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<UploadForm, Problem> {
    let mut multipart = multipart.map_err(|e| {
        tracing::debug!(error = %e.body_text(), "upload is not a multipart form");
        Problem::BadUpload
    })?;
    let mut form = UploadForm::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_problem)? {
        match field.name() {
            Some("name") => form.name = Some(field.text().await.map_err(multipart_problem)?),
            Some("ids") => {
                let list = split_list(&field.text().await.map_err(multipart_problem)?);
                if !list.is_empty() {
                    form.sources.push(format!(
                        "text box: {}",
                        count(list.len(), "value", "values")
                    ));
                    form.values.extend(list);
                }
            }
            Some("file") => {
                let file_name = field.file_name().unwrap_or("").to_owned();
                let bytes = field.bytes().await.map_err(multipart_problem)?;
                if bytes.is_empty() {
                    continue; // no file chosen
                }
                let text = std::str::from_utf8(&bytes).map_err(|_| Problem::NotText)?;
                let (list, header) = parse_csv(text);
                let mut source = format!(
                    "file {}: {}",
                    shorten(&file_name),
                    count(list.len(), "value", "values")
                );
                if let Some(header) = header {
                    source.push_str(&format!(
                        " (header row skipped: {})",
                        shorten(&header.join(", "))
                    ));
                }
                form.sources.push(source);
                form.values.extend(list);
            }
            _ => {}
        }
        if form.sources.len() > MAX_PARTS {
            return Err(Problem::TooManyParts);
        }
        if form.values.len() > MAX_VALUES {
            return Err(Problem::TooManyValues);
        }
    }
    Ok(form)
}

fn multipart_problem(e: MultipartError) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::TooLarge
    } else {
        tracing::debug!(error = %e.body_text(), "malformed upload");
        Problem::BadUpload
    }
}
