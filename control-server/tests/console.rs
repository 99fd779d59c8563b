//! The web console in a real browser: headless Chromium driven through the
//! DevTools protocol against a control server on loopback. Logs in, searches
//! a device, opens its history, checks the gateways and hand-over pages
//! (a hostile refused hand-over is shown escaped, no script runs), and
//! checks screenshots of each page (a PNG of the viewport's size that is not
//! blank), saved under `target/tmp/console-screenshots/`.
//!
//! Chromium comes from Debian's `chromium` package (`scripts/debian-tools`
//! installs it). Without it the test fails on CI (`CI=true`) and is skipped
//! locally, saying why.

mod cdp;
mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{Backend, DEV_A, DEV_B, DEV_C, GW1, SpSpec, harness, sp};
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use serde_json::{Value, json};

const TOKEN: &str = "csadm_console-test-0123456789abcdef0123456789abcdef";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
const HOSTILE: &str = "<script>alert(1)</script>";

fn chromium_or_skip() -> Option<PathBuf> {
    match cdp::find_chromium() {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but chromium is not installed: run scripts/debian-tools (apt-get install chromium)")
        }
        None => {
            eprintln!("skipping the console browser test: chromium is not installed (scripts/debian-tools installs it)");
            None
        }
    }
}

/// Decodes a screenshot, checks its size and that it is not blank, saves it.
fn check_screenshot(png_bytes: &[u8], name: &str) -> PathBuf {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut pixels).expect("the PNG decodes");
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT), "{name}: the viewport's size");
    let channels = info.color_type.samples();
    let pixels = &pixels[..info.buffer_size()];
    let colours: HashSet<&[u8]> = pixels.chunks(channels).collect();
    assert!(colours.len() > 16, "{name}: only {} colours: blank?", colours.len());
    // Most of the page is background; text and the header must cover some of it.
    let first = &pixels[..channels];
    let other = pixels.chunks(channels).filter(|p| *p != first).count();
    let share = other as f64 / (info.width * info.height) as f64;
    assert!(share > 0.02, "{name}: {:.1}% of the pixels differ from the first: uniform?", share * 100.0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png_bytes).expect("save the screenshot");
    path
}

async fn admin(h: &common::Harness, method: &str, path: &str, body: Value) -> Value {
    let url = format!("{}{path}", h.base);
    let request = match method {
        "POST" => h.http.post(url).json(&body),
        _ => h.http.get(url),
    };
    let answer = request.header("authorization", format!("Bearer {TOKEN}")).send().await.expect("admin call");
    assert!(answer.status().is_success(), "{method} {path}: {}", answer.status());
    answer.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let Some(chromium) = chromium_or_skip() else { return };
    let sps = vec![
        SpSpec { may_release: true, may_move_to: vec!["sp-two.example"], ..sp("sp-one.example") },
        SpSpec { may_claim: true, ..sp("sp-two.example") },
    ];
    let h = harness(Backend::Sqlite, sps, |_| {}).await.expect("SQLite always runs");
    control_server::admin::auth::set_token(h.store(), TOKEN).await.expect("admin token");

    // Devices, a history, a connected gateway with a lagging outbox, hand-overs.
    for (device, sp, access) in [(DEV_A, "sp-one.example", "wifi"), (DEV_B, "sp-one.example", "ethernet"), (DEV_C, "sp-two.example", "wifi")] {
        admin(&h, "POST", "/v1/admin/mappings", json!({ "device_id": device, "sp": sp, "access": access, "service_type": "metering" })).await;
    }
    h.resolve(GW1, json!({ "device_id": DEV_B })).await;
    admin(&h, "POST", "/v1/admin/mappings", json!({ "device_id": DEV_B, "sp": "sp-two.example" })).await;
    h.move_devices("sp-two.example", "sp-one.example", &[DEV_B]).await.expect_err("sp-two may not release");
    h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.expect("sp-one hands DEV_A over");
    // A refused hand-over carrying markup where a device id should be.
    let hostile = MovePayload::new("sp-one.example", "sp-two.example", vec![HOSTILE.into()], None);
    let sent = control_server::sp_sim::send_move(&h.http, &h.base, &common::sp_key("sp-one.example"), &hostile).await;
    assert!(sent.is_err(), "a hostile device id is refused");
    let mut stream = h.stream(GW1, 0).await;
    assert!(stream.next(Duration::from_secs(10)).await.is_some(), "gw-1's stream replays its event");

    let mut browser = cdp::Browser::launch(&chromium, WIDTH, HEIGHT).await;
    let base = h.base.clone();

    // Not logged in: sent to the log-in page; a wrong token is refused.
    browser.navigate(&format!("{base}/console/devices")).await;
    browser.wait_for_path("/console/login").await;
    browser.type_into("token", "csadm_wrong").await;
    browser.click("login").await;
    browser.wait_for_path("/console/login").await;
    let error = browser.eval("document.getElementById('login-error')?.textContent ?? ''").await;
    assert!(error.as_str().unwrap_or("").contains("Wrong admin token"), "{error}");
    check_screenshot(&browser.screenshot().await, "1-login-refused");

    // Log in: the session cookie is HttpOnly and SameSite=Strict.
    browser.type_into("token", TOKEN).await;
    browser.click("login").await;
    browser.wait_for_path("/console/devices").await;
    assert_eq!(browser.eval("document.cookie").await, "", "the session cookie is not readable by scripts");
    let cookies = browser.call("Network.getCookies", json!({ "urls": [format!("{base}/console/")] })).await;
    let session = cookies["cookies"].as_array().unwrap().iter().find(|c| c["name"] == "cs_admin_session").cloned();
    let session = session.expect("the session cookie is set");
    assert_eq!((session["httpOnly"].as_bool(), session["sameSite"].as_str()), (Some(true), Some("Strict")), "{session}");
    assert_eq!(browser.eval("document.getElementById('count').textContent").await, "3 device(s) match.");

    // Search by part of the id.
    browser.type_into("q", "00:81").await;
    browser.click("search").await;
    browser.wait_for_path("/console/devices").await;
    let rows = browser.eval("[...document.querySelectorAll('#devices tr td:first-child')].map(td => td.textContent)").await;
    assert_eq!(rows, json!([DEV_B]), "only the device searched for");
    check_screenshot(&browser.screenshot().await, "2-devices-search");

    // Search by gateway, then by SP.
    browser.navigate(&format!("{base}/console/devices?gateway=gw-1")).await;
    browser.wait_for_path("/console/devices").await;
    assert_eq!(browser.eval("document.getElementById('count').textContent").await, "1 device(s) match.");
    browser.navigate(&format!("{base}/console/devices?sp=sp-two.example")).await;
    browser.wait_for_path("/console/devices").await;
    assert_eq!(browser.eval("document.getElementById('count').textContent").await, "3 device(s) match.");

    // One device's history, reached by its link.
    browser.click_link(DEV_B).await;
    browser.wait_for_path(&format!("/console/devices/{DEV_B}")).await;
    assert_eq!(browser.eval("document.getElementById('device-id').textContent").await, DEV_B);
    let history = browser
        .eval("[...document.querySelectorAll('#history tr')].slice(1).map(tr => [...tr.cells].slice(1, 4).map(td => td.textContent))")
        .await;
    assert_eq!(history, json!([["–", "sp-one.example", "admin:api"], ["sp-one.example", "sp-two.example", "admin:api"]]));
    check_screenshot(&browser.screenshot().await, "3-device-history");

    // Gateways: gw-1 is connected with one event not acknowledged; gw-2 is not.
    browser.click_link("Gateways").await;
    browser.wait_for_path("/console/gateways").await;
    let gateways = browser
        .eval("Object.fromEntries([...document.querySelectorAll('#gateways tr')].slice(1).map(tr => [tr.cells[0].textContent, [...tr.cells].slice(1).map(td => td.textContent)]))")
        .await;
    assert_eq!(gateways["gw-1"][0], "connected", "{gateways}");
    assert_eq!(gateways["gw-1"][1], "1", "one open stream: {gateways}");
    assert_eq!((gateways["gw-1"][3].as_str(), gateways["gw-1"][4].as_str(), gateways["gw-1"][5].as_str()), (Some("1"), Some("0"), Some("1")), "last seq, acknowledged, lag: {gateways}");
    assert_eq!(gateways["gw-2"][0], "not connected", "{gateways}");
    check_screenshot(&browser.screenshot().await, "4-gateways");

    // SPs.
    browser.click_link("SPs").await;
    browser.wait_for_path("/console/sps").await;
    let sps = browser.eval("[...document.querySelectorAll('#sps tr')].slice(1).map(tr => tr.cells[0].textContent + ':' + tr.cells[2].textContent)").await;
    assert_eq!(sps, json!(["sp-one.example:0", "sp-two.example:3"]));

    // Hand-overs: the accepted one and the refused ones with why; the markup is text.
    browser.navigate(&format!("{base}/console/handovers?outcome=refused")).await;
    browser.wait_for_path("/console/handovers").await;
    let refused = browser.eval("[...document.querySelectorAll('#handovers tr')].slice(1).map(tr => tr.cells[1].textContent)").await;
    assert_eq!(refused, json!(["refused: invalid_device_id", "refused: not_authorized"]));
    let shown = browser.eval("document.getElementById('handovers').textContent").await;
    assert!(shown.as_str().unwrap().contains(HOSTILE), "the hostile text is shown as text: {shown}");
    assert_eq!(browser.eval("document.scripts.length").await, 0, "no script element made it into the page");
    check_screenshot(&browser.screenshot().await, "5-handovers-refused");
    browser.click_link("All").await;
    browser.wait_for_path("/console/handovers").await;
    assert_eq!(browser.eval("document.querySelectorAll('#handovers tr').length").await, 4, "header + 3 hand-overs");

    // Log out: the console is closed again.
    browser.click_link("Devices").await;
    browser.wait_for_path("/console/devices").await;
    browser.eval("document.querySelector('header form button').id = 'logout'").await;
    browser.click("logout").await;
    browser.wait_for_path("/console/login").await;
    browser.navigate(&format!("{base}/console/gateways")).await;
    browser.wait_for_path("/console/login").await;

    browser.close().await;
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_off_without_an_admin_token_and_pages_are_locked_down() {
    let h = harness(Backend::Sqlite, vec![sp("sp-one.example")], |c| c.policy.auth_cache_ttl_ms = 0).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let off = http.get(format!("{}/console/devices", h.base)).send().await.unwrap();
    assert_eq!(off.status().as_u16(), 403);
    assert!(off.text().await.unwrap().contains("admin-token"));

    control_server::admin::auth::set_token(h.store(), TOKEN).await.unwrap();
    let redirect = http.get(format!("{}/console/devices", h.base)).send().await.unwrap();
    assert_eq!(redirect.status().as_u16(), 303);
    assert_eq!(redirect.headers()["location"], "/console/login");
    let login = http.get(format!("{}/console/login", h.base)).send().await.unwrap();
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = login.text().await.unwrap();
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"), "no scripts or external assets");
    // A forged or expired session is refused.
    let forged = http
        .get(format!("{}/console/devices", h.base))
        .header("cookie", "cs_admin_session=99999999999999.00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 303);
    let logged_in = http
        .post(format!("{}/console/login", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status().as_u16(), 303);
    let cookie = logged_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/console"), "{cookie}");
    let value = cookie.split(';').next().unwrap().to_owned();
    let devices = http.get(format!("{}/console/devices", h.base)).header("cookie", &value).send().await.unwrap();
    assert_eq!(devices.status().as_u16(), 200);
    // Rotating the token ends the session.
    control_server::admin::auth::set_token(h.store(), "csadm_another-token-0123456789abcdef0123456789").await.unwrap();
    let ended = http.get(format!("{}/console/devices", h.base)).header("cookie", &value).send().await.unwrap();
    assert_eq!(ended.status().as_u16(), 303);
}
