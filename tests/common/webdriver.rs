//! A minimal W3C WebDriver client for Debian's chromedriver: enough to
//! load a page, run a script, click an element and take a screenshot.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Debian puts them.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser test can run here; when it cannot and
/// `MAGLEV_REQUIRE_BROWSER` is set (CI), that is a failure.
pub fn available(test: &str) -> bool {
    let ok = std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if !ok {
        assert!(
            std::env::var_os("MAGLEV_REQUIRE_BROWSER").is_none(),
            "{test}: chromium and chromium-driver are required here"
        );
        eprintln!("skipped {test}: needs chromium and chromium-driver");
    }
    ok
}

fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    // chromedriver answers with Content-Length (and may keep the
    // connection open): read the head, then exactly the body.
    let mut rd = std::io::BufReader::new(s);
    let mut head = String::new();
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        if std::io::BufRead::read_line(&mut rd, &mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&l);
    }
    let mut buf = vec![0u8; len];
    rd.read_exact(&mut buf).unwrap();
    let body = String::from_utf8_lossy(&buf).to_string();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {head}\n{body}"
    );
    v["value"].clone()
}

/// A chromedriver process with one browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: super::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`.
    pub fn start(width: u32, height: u32) -> Browser {
        // Port 0: chromedriver picks a free one and says which (no race
        // with other tests for a port).
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let out = driver.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok)
            {
                if let Some(p) = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|p| p.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = tx.send(p);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("chromedriver did not say its port");
        let profile = super::TempDir::new("chromium");
        // The flags that keep Chromium off the (closed) network and out of
        // the sandbox it cannot have as root in a container.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", profile.path("profile").display())]
            }
        }}});
        let v = call(port, "POST", "/session", Some(&caps));
        let session = v["sessionId"].as_str().expect("session").to_string();
        Browser {
            driver,
            port,
            session,
            _profile: profile,
        }
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        call(
            self.port,
            "POST",
            &self.at("/url"),
            Some(&json!({ "url": url })),
        );
    }

    /// Runs `script` (a function body; `arguments` as usual) and returns
    /// its value.
    pub fn eval(&self, script: &str) -> Value {
        call(
            self.port,
            "POST",
            &self.at("/execute/sync"),
            Some(&json!({"script": script, "args": []})),
        )
    }

    /// Waits until `script` returns true.
    pub fn wait(&self, what: &str, timeout: Duration, script: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script) == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "browser: no {what} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        let e = call(
            self.port,
            "POST",
            &self.at("/element"),
            Some(&json!({"using": "css selector", "value": css})),
        );
        let id = e
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string();
        call(
            self.port,
            "POST",
            &self.at(&format!("/element/{id}/click")),
            Some(&json!({})),
        );
    }

    /// Sends a Chrome DevTools command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        call(
            self.port,
            "POST",
            &self.at("/goog/cdp/execute"),
            Some(&json!({"cmd": cmd, "params": params})),
        )
    }

    /// The page as PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = call(self.port, "GET", &self.at("/screenshot"), None);
        vpp_maglev::dashboard::web::base64_decode(v.as_str().expect("base64")).expect("base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (port, path) = (self.port, self.at(""));
        let _ = std::panic::catch_unwind(move || call(port, "DELETE", &path, None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
