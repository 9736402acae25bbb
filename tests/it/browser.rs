//! A real headless Chromium for the browser tests, driven over WebDriver with fantoccini: one
//! chromedriver per test process, started on first use on a free port (in a process group of
//! its own) and stopped with every browser it started when the process exits.
//!
//! Chromium and its driver come from the Debian `chromium` and `chromium-driver` packages;
//! `tests/run` installs them when missing. Without them these tests fail, saying what to
//! install; they never skip.

use fantoccini::{Client, ClientBuilder, Locator};
use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to show what a test waits for.
pub const PAGE_LIMIT: Duration = Duration::from_secs(30);

/// The driver's port; its process group is stopped at exit.
static DRIVER: OnceLock<u16> = OnceLock::new();
static DRIVER_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_driver() {
    let group = DRIVER_GROUP.load(Ordering::SeqCst);
    if group > 0 {
        // SAFETY: signals our own child's process group (chromedriver and its browsers).
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

fn driver() -> u16 {
    *DRIVER.get_or_init(|| {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install it with `apt-get install -y {package}` (tests/run does this)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"))
        };
        DRIVER_GROUP.store(child.id() as i32, Ordering::SeqCst);
        // SAFETY: registering a plain extern "C" function to run at exit.
        unsafe {
            libc::atexit(stop_driver);
        }
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < PAGE_LIMIT,
                "chromedriver did not listen on port {port} within {PAGE_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        port
    })
}

/// A new headless Chromium window of 1280×900.
async fn open() -> Client {
    let port = driver();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot open Chromium through chromedriver: {e}"))
}

/// Runs `test` with a fresh browser, which is closed afterwards whether the test passed or
/// panicked.
pub async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    use futures_util::FutureExt as _;
    let client = open().await;
    let outcome = std::panic::AssertUnwindSafe(test(client.clone()))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The visible text of the first element `css` finds, waiting until it exists.
pub async fn text(browser: &Client, css: &str) -> String {
    match browser
        .wait()
        .at_most(PAGE_LIMIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element.text().await.expect("an element's text"),
        Err(e) => panic!("no element {css:?} on {}: {e}", url(browser).await),
    }
}

/// The page's address.
pub async fn url(browser: &Client) -> String {
    browser
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default()
}

/// Waits until the text of `css` satisfies `done`, and returns it; panics after
/// [`PAGE_LIMIT`], showing the last text.
pub async fn wait_for_text(browser: &Client, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let now = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < PAGE_LIMIT,
            "{css} on {} is still not {what} after {PAGE_LIMIT:?}: {now:?}",
            url(browser).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css` finds.
pub async fn click(browser: &Client, css: &str) {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css:?}: {e}")),
        Err(e) => panic!("no element {css:?} to click on {}: {e}", url(browser).await),
    };
}

/// Types `text` into the field `css` finds.
pub async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = match browser.find(Locator::Css(css)).await {
        Ok(field) => field,
        Err(e) => panic!("no field {css:?} on {}: {e}", url(browser).await),
    };
    field.clear().await.expect("a field can be cleared");
    field.send_keys(text).await.expect("a field takes keys");
}

/// Saves a screenshot of the page as `docs/screenshots/NAME.png` for the README, after
/// resizing the window to `height` pixels.
pub async fn screenshot(browser: &Client, name: &str, height: u32) {
    browser
        .set_window_size(1280, height)
        .await
        .expect("the window can be resized");
    let png = browser.screenshot().await.expect("a screenshot");
    let dir = Path::new(crate::common::REPO).join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots can be created");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot can be written");
    browser
        .set_window_size(1280, 900)
        .await
        .expect("the window can be resized");
}
