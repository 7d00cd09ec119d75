//! The new key's CSV download (INTERFACE.md "Safety rules that hold
//! everywhere", "Spreadsheets"): a cell a spreadsheet would run as a formula
//! is prefixed with `'`, whichever column it is in.

use super::forms::{add_person, post_new_key, signed_in};
use crate::helpers::{Engine, spawn_app};

const ADMIN: &str = "root@example.com";
/// Scopes a spreadsheet would run: arithmetic, and OWASP's DDE example.
const FORMULA_SCOPES: [&str; 2] = ["=1+1", "=cmd|'/Ccalc.exe'!A0"];

/// The CSV the secret page offers for download: its `data:` link decoded
/// (the template escapes its `/` as `&#x2f;`).
fn csv_download(page: &str) -> String {
    let marker = "href=\"data:text&#x2f;csv;charset=utf-8,";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no CSV link in {page}"))
        + marker.len();
    let encoded = &page[start..start + page[start..].find('"').unwrap()];
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// The CSV's second line split into its cells (none of this test's cells
/// holds a comma or a quote, so none is quoted).
fn data_row(csv: &str) -> Vec<String> {
    let mut lines = csv.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("client_id,client_secret,name,scopes,audiences,expires_at")
    );
    let row = lines.next().unwrap();
    assert!(!row.contains('"'), "{row}");
    row.split(',').map(str::to_owned).collect()
}

/// An API whose scopes are formulas, and keys named like formulas: in the
/// downloaded CSV every such cell starts with `'`, and the others are as
/// they were.
async fn formula_cells_of_the_csv_download_are_defused(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_api(
        "https://sheets.example.com",
        "Sheets",
        &FORMULA_SCOPES.join(" "),
    )
    .await;
    add_person(&app, ADMIN, "admin").await;
    let (client, csrf) = signed_in(&app, ADMIN).await;

    for name in ["=2+2", "@SUM(A1)", "+1", "-1", "plain"] {
        let mut fields = vec![("name", name), ("expires_in", "30d")];
        fields.extend(FORMULA_SCOPES.map(|scope| ("scope", scope)));
        let response = post_new_key(&app, &client, &csrf, &fields).await;
        assert_eq!(response.status(), 200, "{name}");
        let csv = csv_download(&response.text().await.unwrap());
        let cells = data_row(&csv);
        assert_eq!(cells.len(), 6, "{csv}");
        assert!(cells[0].starts_with("kgc_") && cells[1].starts_with("kgs_"));
        let expected_name = if name == "plain" {
            name.to_owned()
        } else {
            format!("'{name}")
        };
        assert_eq!(cells[2], expected_name, "the name cell: {csv}");
        assert_eq!(
            cells[3],
            format!("'{}", FORMULA_SCOPES.join(" ")),
            "the scopes cell: {csv}"
        );
        assert_eq!(cells[4], "https://sheets.example.com");
        assert!(cells[5].ends_with('Z'), "{csv}");
    }
}

crate::both_engines!(formula_cells_of_the_csv_download_are_defused);
