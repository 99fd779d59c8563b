//! A small Chrome DevTools Protocol client for the console test: starts
//! headless Chromium (Debian's `chromium`) on loopback, speaks the protocol
//! over a websocket it implements itself (RFC 6455 client side: the
//! handshake, masked text frames out, text / continuation / ping / close
//! frames in), so the test needs no websocket crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Where Chromium is, if installed (`CHROMIUM` overrides).
pub fn find_chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// A running headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    ws: WebSocket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile, reachable only on loopback,
    /// and opens one page of `width` × `height` CSS pixels.
    pub async fn launch(program: &Path, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--no-pings",
                "--metrics-recording-only",
                // Nothing but loopback resolves: the test never reaches out.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    return url.to_owned();
                }
            }
            panic!("chromium exited without a DevTools address");
        })
        .await
        .expect("chromium printed its DevTools address in time");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ws = WebSocket::connect(&url).await;
        let mut browser = Browser { child, ws, session: String::new(), next_id: 0, _profile: profile };
        let target = browser.browser_call("Target.createTarget", json!({ "url": "about:blank" })).await;
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser.browser_call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true })).await;
        browser.session = attached["sessionId"].as_str().expect("sessionId").to_owned();
        browser.call("Page.enable", json!({})).await;
        browser.call("Runtime.enable", json!({})).await;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
        browser
    }

    async fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::String(session);
        }
        self.ws.send_text(&message.to_string()).await;
        loop {
            let text = tokio::time::timeout(Duration::from_secs(60), self.ws.read_text())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            let reply: Value = serde_json::from_str(&text).expect("CDP sends JSON");
            if reply["id"].as_u64() == Some(id) {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
    }

    async fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None).await
    }

    /// A command to the page.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(session)).await
    }

    /// Evaluates an expression in the page; `None` when the page is between
    /// documents (navigating) or the expression threw.
    pub async fn try_eval(&mut self, expression: &str) -> Option<Value> {
        let session = self.session.clone();
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": "Runtime.evaluate", "sessionId": session,
            "params": { "expression": expression, "returnByValue": true, "awaitPromise": true } });
        self.ws.send_text(&message.to_string()).await;
        loop {
            let text = tokio::time::timeout(Duration::from_secs(60), self.ws.read_text()).await.expect("an answer");
            let reply: Value = serde_json::from_str(&text).expect("CDP sends JSON");
            if reply["id"].as_u64() == Some(id) {
                if reply.get("error").is_some() || reply["result"].get("exceptionDetails").is_some() {
                    return None;
                }
                return Some(reply["result"]["result"]["value"].clone());
            }
        }
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|| panic!("evaluating {expression} failed"))
    }

    /// Marks the current document, so [`Self::wait_for_path`] waits for the next one.
    async fn mark(&mut self) {
        let _ = self.try_eval("window.__cdpOld = true").await;
    }

    /// Waits until a new document (not the one before the last navigation
    /// or click) at `path` has finished loading.
    pub async fn wait_for_path(&mut self, path: &str) {
        let check = format!(
            "!window.__cdpOld && document.readyState === 'complete' && location.pathname === {}",
            json!(path)
        );
        for _ in 0..300 {
            if self.try_eval(&check).await == Some(Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let at = self.try_eval("location.href").await;
        panic!("the page never reached {path} (at {at:?})");
    }

    pub async fn navigate(&mut self, url: &str) {
        self.mark().await;
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Types into the element with `id` (focus, then text input as a keyboard would).
    pub async fn type_into(&mut self, id: &str, text: &str) {
        let focused = self.eval(&format!("(() => {{ const e = document.getElementById({}); e.focus(); e.select && e.select(); return document.activeElement === e; }})()", json!(id))).await;
        assert_eq!(focused, Value::Bool(true), "#{id} takes the focus");
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// Clicks the middle of the element with `id` with the mouse.
    pub async fn click(&mut self, id: &str) {
        let rect = self
            .eval(&format!(
                "(() => {{ const r = document.getElementById({}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
                json!(id)
            ))
            .await;
        let (x, y) = (rect[0].as_f64().expect("x"), rect[1].as_f64().expect("y"));
        self.mark().await;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call("Input.dispatchMouseEvent", json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }))
                .await;
        }
    }

    /// Clicks the first link whose text is `text`.
    pub async fn click_link(&mut self, text: &str) {
        let rect = self
            .eval(&format!(
                "(() => {{ const a = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === {}); \
                 if (!a) return null; const r = a.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
                json!(text)
            ))
            .await;
        let (x, y) = (rect[0].as_f64().unwrap_or_else(|| panic!("a link {text:?}")), rect[1].as_f64().expect("y"));
        self.mark().await;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call("Input.dispatchMouseEvent", json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }))
                .await;
        }
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("data")).expect("base64 PNG")
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser_call("Browser.close", json!({}))).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// The client side of a websocket (RFC 6455), enough for CDP.
pub struct WebSocket {
    stream: BufReader<TcpStream>,
}

impl WebSocket {
    /// Connects to `ws://127.0.0.1:PORT/path` (loopback only).
    pub async fn connect(url: &str) -> WebSocket {
        let rest = url.strip_prefix("ws://").unwrap_or_else(|| panic!("not a ws:// URL: {url}"));
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        assert!(host.starts_with("127.0.0.1:") || host.starts_with("localhost:"), "DevTools must be on loopback: {host}");
        let tcp = TcpStream::connect(host).await.expect("connect to DevTools");
        let mut key = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut stream = BufReader::new(tcp);
        stream.get_mut().write_all(request.as_bytes()).await.expect("handshake");
        let mut status = String::new();
        stream.read_line(&mut status).await.expect("handshake answer");
        assert!(status.starts_with("HTTP/1.1 101"), "websocket handshake refused: {status}");
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.expect("handshake headers");
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        WebSocket { stream }
    }

    async fn write_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mut mask = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut mask);
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.get_mut().write_all(&frame).await.expect("websocket write");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.write_frame(0x1, text.as_bytes()).await;
    }

    /// The next whole text message (pings answered, fragments joined).
    pub async fn read_text(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.expect("websocket read");
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).await.expect("length");
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).await.expect("length");
                    usize::try_from(u64::from_be_bytes(b)).expect("frame fits in memory")
                }
                n => n as usize,
            };
            assert!(len <= 256 << 20, "a {len}-byte websocket frame");
            let mut mask = [0u8; 4];
            if masked {
                self.stream.read_exact(&mut mask).await.expect("mask");
            }
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload).await.expect("payload");
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0x9 => self.write_frame(0xA, &payload).await,
                0xA => {}
                0x8 => panic!("DevTools closed the websocket"),
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).expect("CDP text is UTF-8");
                    }
                }
                other => panic!("websocket opcode {other}"),
            }
        }
    }
}
