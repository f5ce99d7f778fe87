//! The "Devices" page: where the user is logged in (browser and system, since when, last
//! seen), a button to end one device and one to end all the others. Built on
//! [`slates::Devices`]; every form post is answered with a 303 back to the page.

use axum::extract::{Path, Query};
use axum::response::Response;
use serde::Deserialize;
use slates::{CurrentUser, Device, Devices};

use super::pages::{esc, page, problem_html, PageError};
use super::problem::{see_other, Problem};
use super::timezone::LocalTime;

/// The page's query: the problem of a failed post, or how many devices were just ended.
#[derive(Debug, Default, Deserialize)]
pub struct DevicesQuery {
    error: Option<String>,
    ended: Option<u64>,
}

/// `GET /devices`.
pub async fn devices_page(
    user: CurrentUser,
    devices: Devices,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let list = devices.list().await?;
    let profile: Option<super::Profile> = user.profile().await?;
    let local = LocalTime::new(profile.and_then(|p| p.timezone).as_deref());
    let problem = q.error.as_deref().and_then(Problem::from_code);
    Ok(render(user.username(), &list, local, problem, q.ended))
}

/// `POST /devices/{id}/end`: ends one of the user's devices.
pub async fn end_device(devices: Devices, Path(id): Path<String>) -> Response {
    match devices.end(&id).await {
        Ok(true) => see_other("/devices?ended=1"),
        // Not one of this user's devices: the same answer whether it exists or not.
        Ok(false) => Problem::NoDevice.redirect_to("/devices"),
        Err(e) => Problem::from(e).redirect_to("/devices"),
    }
}

/// `POST /devices/end-others`: ends every other device of the user.
pub async fn end_others(devices: Devices) -> Response {
    match devices.end_others().await {
        Ok(n) => see_other(&format!("/devices?ended={n}")),
        Err(e) => Problem::from(e).redirect_to("/devices"),
    }
}

fn render(
    user: &str,
    list: &[Device],
    local: LocalTime,
    problem: Option<Problem>,
    ended: Option<u64>,
) -> Response {
    let mut body = String::from("<h1>Devices</h1>");
    body.push_str(&problem_html(problem));
    if let Some(n) = ended {
        let noun = if n == 1 { "device" } else { "devices" };
        body.push_str(&format!(
            "<p class=\"ok\" id=\"ended\">Ended {n} {noun}.</p>"
        ));
    }
    body.push_str(
        "<p class=\"hint\">Where you are logged in. End a device you do not recognise, or all \
         the others after losing a phone: its next request is logged out.</p>\
         <table id=\"devices\"><tr><th>device</th><th>logged in</th><th>last seen</th><th></th></tr>",
    );
    for d in list {
        let label = if d.label.is_empty() {
            "Unknown device"
        } else {
            &d.label
        };
        let action = if d.current {
            "<strong class=\"current\">This device</strong>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/devices/{id}/end\"><button type=\"submit\" class=\"link end\">End</button></form>",
                id = esc(d.id.as_str())
            )
        };
        body.push_str(&format!(
            "<tr class=\"device\" data-id=\"{id}\" data-current=\"{current}\"><td class=\"label\">{label}</td><td>{created}</td><td>{seen}</td><td>{action}</td></tr>",
            id = esc(d.id.as_str()),
            current = d.current,
            label = esc(label),
            created = esc(&local.date_time(d.created)),
            seen = esc(&local.date_time(d.last_seen)),
        ));
    }
    body.push_str("</table>");
    if list.iter().any(|d| !d.current) {
        body.push_str(
            "<form method=\"post\" action=\"/devices/end-others\"><button type=\"submit\" id=\"end-others\" class=\"secondary\">End all other devices</button></form>",
        );
    }
    page("Devices", Some(user), &body)
}
