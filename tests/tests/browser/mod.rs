//! A real browser for the suites that test pages as a person sees them: Debian's headless
//! Chromium, driven over WebDriver by chromedriver (with `fantoccini`), trusting the
//! runtime's HTTPS server by its public key and by nothing wider.
//!
//! `scripts/test` installs both (`apt-get install chromium chromium-driver`). Without them
//! a suite runs only as root (which can install them); otherwise it says why it skipped.
//!
//! The suites are synchronous, like the rest of `e2e` (its clients block), so the browser is
//! too: each call runs the WebDriver command to its end on a runtime of its own.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use base64::Engine;
use e2e::{Process, Runtime, free_port, wait_for};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to load or to show what a step waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one WebDriver command may take before the suite stops waiting for it (a hung
/// browser fails the test instead of hanging it).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The desktop size every suite starts at, and the size of its screenshots.
pub const DESKTOP: (u32, u32) = (1280, 800);

/// A phone's size (an iPhone 12 to 15, in CSS pixels).
pub const PHONE: (u32, u32) = (390, 844);

/// A headless Chromium with its chromedriver, pointed at one runtime; both end on drop.
pub struct Browser {
    client: Client,
    /// `http://127.0.0.1:PORT/session/ID` of chromedriver, for what fantoccini has no call
    /// for (the console log).
    session: String,
    exec: tokio::runtime::Runtime,
    /// Held for its drop, which ends chromedriver's process group.
    _driver: Driver,
    origin: String,
    test: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

/// chromedriver, in a process group of its own that Chromium's processes join: dropping it
/// ends them all, whether or not chromedriver got to close the browser.
struct Driver(Process);

impl Drop for Driver {
    fn drop(&mut self) {
        let pid = self.0.pid();
        if pid != 0 {
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        // Then `Process` reaps chromedriver.
    }
}

/// Whether Chromium and chromedriver are here; `false` (skip, said out loud) when they are
/// missing and we cannot install them.
fn installed() -> Result<bool> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    ensure!(
        !nix::unistd::Uid::effective().is_root(),
        "{missing:?} not installed: run ./scripts/test, which installs them \
         (apt-get install chromium chromium-driver)"
    );
    eprintln!(
        "SKIPPED: {missing:?} not installed and this is not root \
         (./scripts/test installs chromium and chromium-driver)"
    );
    Ok(false)
}

/// The base64 SHA-256 of the public key (SubjectPublicKeyInfo) of the first certificate in
/// `pem`: what Chromium's `--ignore-certificate-errors-spki-list` takes.
fn spki_sha256(pem: &Path) -> Result<String> {
    let text = std::fs::read(pem).with_context(|| pem.display().to_string())?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&text)
        .map_err(|e| anyhow!("{}: not PEM: {e:?}", pem.display()))?;
    let cert = block
        .parse_x509()
        .map_err(|e| anyhow!("{}: not a certificate: {e:?}", pem.display()))?;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        cert.tbs_certificate.subject_pki.raw,
    );
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

/// A client of chromedriver (plain HTTP on loopback).
fn driver_http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// Width and height of a PNG, from its header.
fn png_size(png: &[u8]) -> Result<(u32, u32)> {
    let header = png.get(..24).context("a PNG shorter than its header")?;
    ensure!(header.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |b: &[u8]| b.try_into().map(u32::from_be_bytes);
    Ok((be(&header[16..20])?, be(&header[20..24])?))
}

impl Browser {
    /// Starts chromedriver and a Chromium session for `test` (the name its screenshots
    /// carry) against `rt`'s HTTPS port, at [`DESKTOP`] size; `None` when the suite skips.
    pub fn start(rt: &Runtime, test: &str) -> Result<Option<Self>> {
        if !installed()? {
            return Ok(None);
        }
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}")).process_group(0);
        let log = rt.dir.path().join(format!("chromedriver-{test}.log"));
        let driver = Driver(Process::spawn(cmd, log)?);
        let status = format!("http://127.0.0.1:{port}/status");
        wait_for(PAGE_TIMEOUT, "chromedriver to be ready", || {
            let v: Value = driver_http().get(&status).send().ok()?.json().ok()?;
            (v["value"]["ready"] == true).then_some(())
        })
        .with_context(|| driver.0.log_text())?;

        let profile = tempfile::tempdir()?;
        // The machine reaches no outside network: without these Chromium keeps trying
        // Google's hosts (updates, sync, field trials, QUIC probes) and pages wait on it.
        // `--user-data-dir` is also what makes Chromium honour the key list below.
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // The runtime's certificate is signed by its own CA, which Chromium does not know.
        // Rather than ignoring certificate errors everywhere, the browser accepts this one
        // server key: the key of the certificate the runtime serves, from its data
        // directory. Any other certificate is still an error.
        let server_cert = rt.data_dir().join("server.pem");
        args.push(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_sha256(&server_cert)?
        ));
        let caps: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "acceptInsecureCerts": false,
            // What the page's console says (a blocked form, a refused resource), for the
            // failures to show.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }))?;

        let exec = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = exec
            .block_on(async {
                tokio::time::timeout(
                    COMMAND_TIMEOUT,
                    ClientBuilder::new(HttpConnector::new())
                        .capabilities(caps)
                        .connect(&format!("http://127.0.0.1:{port}")),
                )
                .await
            })
            .context("Chromium did not start in time")?
            .with_context(|| format!("starting Chromium: {}", driver.0.log_text()))?;
        let id = exec.block_on(client.session_id()).ok().flatten();
        let browser = Self {
            client,
            session: format!("http://127.0.0.1:{port}/session/{}", id.unwrap_or_default()),
            exec,
            _driver: driver,
            origin: format!("https://{}", rt.https_endpoint()),
            test: test.to_owned(),
            shots: e2e::workspace_root().join("target/browser-screenshots"),
            _profile: profile,
        };
        browser.run("setting timeouts", async {
            let t = TimeoutConfiguration::new(None, Some(PAGE_TIMEOUT), Some(Duration::ZERO));
            Ok(browser.client.update_timeouts(t).await?)
        })?;
        browser.set_viewport(DESKTOP)?;
        Ok(Some(browser))
    }

    /// Runs one browser step to its end, bounded by [`COMMAND_TIMEOUT`].
    fn run<T>(&self, what: &str, step: impl Future<Output = Result<T>>) -> Result<T> {
        self.exec
            .block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, step).await })
            .with_context(|| format!("{what}: the browser did not answer in {COMMAND_TIMEOUT:?}"))?
            .with_context(|| what.to_owned())
    }

    /// `https://HOST:PORT` of the runtime.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Opens `path` (on the runtime's origin unless it is a whole URL) and waits for it to
    /// load.
    pub fn goto(&self, path: &str) -> Result<()> {
        let url = if path.starts_with("https://") || path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.origin)
        };
        self.run(&format!("opening {url}"), async {
            Ok(self.client.goto(&url).await?)
        })
    }

    /// The address of the page shown.
    pub fn url(&self) -> Result<url::Url> {
        self.run("reading the address", async {
            Ok(self.client.current_url().await?)
        })
    }

    /// The path of the page shown.
    pub fn path(&self) -> Result<String> {
        Ok(self.url()?.path().to_owned())
    }

    /// The document as the browser holds it (serialized DOM).
    pub fn source(&self) -> Result<String> {
        self.run("reading the page", async {
            Ok(self.client.source().await?)
        })
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> Result<usize> {
        self.run(&format!("finding {css}"), async {
            Ok(self.client.find_all(Locator::Css(css)).await?.len())
        })
    }

    /// Whether anything matches `css`.
    pub fn exists(&self, css: &str) -> Result<bool> {
        Ok(self.count(css)? > 0)
    }

    /// Waits until something matches `css` (up to [`PAGE_TIMEOUT`]).
    pub fn wait_for(&self, css: &str) -> Result<()> {
        let start = Instant::now();
        while !self.exists(css)? {
            if start.elapsed() > PAGE_TIMEOUT {
                bail!(
                    "nothing matched {css} within {PAGE_TIMEOUT:?} on {}; the console: {}",
                    self.url()?,
                    self.console_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Result<String> {
        self.run(&format!("reading {css}"), async {
            Ok(self.client.find(Locator::Css(css)).await?.text().await?)
        })
    }

    /// The rendered text of every element matching `css`.
    pub fn texts(&self, css: &str) -> Result<Vec<String>> {
        self.run(&format!("reading {css}"), async {
            let mut out = Vec::new();
            for e in self.client.find_all(Locator::Css(css)).await? {
                out.push(e.text().await?);
            }
            Ok(out)
        })
    }

    /// The current value of the form field matching `css` (what a submit would send).
    pub fn value(&self, css: &str) -> Result<String> {
        self.run(&format!("reading the value of {css}"), async {
            Ok(self
                .client
                .find(Locator::Css(css))
                .await?
                .prop("value")
                .await?
                .unwrap_or_default())
        })
    }

    /// An attribute of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Result<Option<String>> {
        self.run(&format!("reading {name} of {css}"), async {
            Ok(self
                .client
                .find(Locator::Css(css))
                .await?
                .attr(name)
                .await?)
        })
    }

    /// Whether the first element matching `css` is shown.
    pub fn is_displayed(&self, css: &str) -> Result<bool> {
        self.run(&format!("looking at {css}"), async {
            Ok(self
                .client
                .find(Locator::Css(css))
                .await?
                .is_displayed()
                .await?)
        })
    }

    /// For each row matching `rows`, the text of its cells: of the cell matching each of
    /// `cells` in turn, or of all its `td`s when `cells` is empty.
    pub fn table(&self, rows: &str, cells: &[&str]) -> Result<Vec<Vec<String>>> {
        self.run(&format!("reading the rows {rows}"), async {
            let mut out = Vec::new();
            for row in self.client.find_all(Locator::Css(rows)).await? {
                let mut texts = Vec::new();
                if cells.is_empty() {
                    for cell in row.find_all(Locator::Css("td")).await? {
                        texts.push(cell.text().await?);
                    }
                } else {
                    for css in cells {
                        texts.push(row.find(Locator::Css(css)).await?.text().await?);
                    }
                }
                out.push(texts);
            }
            Ok(out)
        })
    }

    /// Empties the field matching `css` and types `text` into it, key by key, as a person
    /// would (`\n` is Enter).
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.run(&format!("typing into {css}"), async {
            let field = self.client.find(Locator::Css(css)).await?;
            field.clear().await?;
            field.send_keys(text).await?;
            Ok(())
        })
    }

    /// Picks the option whose value is `value` in the `select` matching `css`.
    pub fn select(&self, css: &str, value: &str) -> Result<()> {
        self.run(&format!("choosing {value:?} in {css}"), async {
            Ok(self
                .client
                .find(Locator::Css(css))
                .await?
                .select_by_value(value)
                .await?)
        })
    }

    /// Clicks the element matching `css` (a submit button, a link) and waits until the
    /// browser has left the page for the one that answers it.
    pub fn submit(&self, css: &str) -> Result<()> {
        let left = self.run(&format!("submitting with {css}"), async {
            // The old document's root goes stale once the next one replaces it: this also
            // notices a form that answers with the same address (a redirect back).
            let page = self.client.find(Locator::Css("html")).await?;
            self.client.find(Locator::Css(css)).await?.click().await?;
            let start = Instant::now();
            loop {
                match page.tag_name().await {
                    Err(e) if e.is_stale_element_reference() || e.is_no_such_element() => {
                        return Ok(true);
                    }
                    // Caught mid-navigation, chromedriver says so in its own words.
                    Err(e) if e.to_string().contains("does not belong to the document") => {
                        return Ok(true);
                    }
                    Err(e) => return Err(e.into()),
                    Ok(_) if start.elapsed() > PAGE_TIMEOUT => return Ok(false),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })?;
        // A form whose answer the browser refuses to follow (a Content-Security-Policy
        // `form-action` that a redirect breaks, say) leaves the page as it was: the console
        // says why.
        ensure!(
            left,
            "still on {} {PAGE_TIMEOUT:?} after clicking {css}; the console: {}",
            self.url()?,
            self.console_log()
        );
        Ok(())
    }

    /// The value of the cookie `name` the browser holds for the page shown (HttpOnly ones
    /// too: WebDriver sees them).
    pub fn cookie(&self, name: &str) -> Result<Option<String>> {
        self.run(&format!("reading the cookie {name}"), async {
            Ok(self
                .client
                .get_all_cookies()
                .await?
                .into_iter()
                .find(|c| c.name() == name)
                .map(|c| c.value().to_owned()))
        })
    }

    /// Whether a JavaScript dialog (`alert`) is open.
    pub fn alert_open(&self) -> Result<bool> {
        self.run("looking for a dialog", async {
            match self.client.get_alert_text().await {
                Ok(_) => Ok(true),
                Err(e) if e.is_no_such_alert() => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Makes the page area (what a screenshot shows) exactly `width` x `height` CSS
    /// pixels. The window is that plus the browser's frame, which headless Chromium keeps:
    /// measured once from a screenshot and added.
    pub fn set_viewport(&self, (width, height): (u32, u32)) -> Result<()> {
        self.run(&format!("resizing to {width}x{height}"), async {
            self.client.set_window_size(width, height).await?;
            let (w, h) = png_size(&self.client.screenshot().await?)?;
            if (w, h) != (width, height) {
                let frame = (width.saturating_sub(w), height.saturating_sub(h));
                self.client
                    .set_window_size(width + frame.0, height + frame.1)
                    .await?;
                let got = png_size(&self.client.screenshot().await?)?;
                ensure!(
                    got == (width, height),
                    "the page area is {got:?}, not {width}x{height}"
                );
            }
            Ok(())
        })
    }

    /// Saves a screenshot of the page area as
    /// `target/browser-screenshots/<test>-<step>.png`; returns its path.
    pub fn screenshot(&self, step: &str) -> Result<PathBuf> {
        let png = self.run(&format!("taking the screenshot {step}"), async {
            Ok(self.client.screenshot().await?)
        })?;
        std::fs::create_dir_all(&self.shots)?;
        let path = self.shots.join(format!("{}-{step}.png", self.test));
        std::fs::write(&path, png).with_context(|| path.display().to_string())?;
        Ok(path)
    }

    /// The page console's messages since the last call (errors, and the security ones:
    /// what a Content-Security-Policy blocked), one a line.
    pub fn console_log(&self) -> String {
        let read = || -> Result<String> {
            let v: Value = driver_http()
                .post(format!("{}/se/log", self.session))
                .json(&json!({"type": "browser"}))
                .send()?
                .json()?;
            Ok(v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    Some(format!(
                        "{}: {}",
                        m["level"].as_str()?,
                        m["message"].as_str()?
                    ))
                })
                .collect::<Vec<_>>()
                .join("\n"))
        };
        read().unwrap_or_else(|e| format!("(not read: {e:#})"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session makes chromedriver end Chromium (and remove its profile's
        // locks); then `_driver` drops, and with it whatever of the process group was left.
        let client = self.client.clone();
        let _ = self.exec.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), client.close()).await
        });
    }
}
