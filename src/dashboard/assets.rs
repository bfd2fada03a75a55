//! The page, embedded in the binary: no CDN, no web fonts, no build step
//! (routers have no internet; the crate compiles without npm).

/// The page (`data-admin` is set per request).
pub const INDEX: &str = include_str!("assets/index.html");

/// A static file.
pub struct Asset {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// The static file at `path`, if any.
pub fn get(path: &str) -> Option<Asset> {
    let (content_type, body): (&str, &[u8]) = match path {
        "/assets/app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/app.js"),
        ),
        "/assets/app.css" => ("text/css; charset=utf-8", include_bytes!("assets/app.css")),
        // An SVG icon: every browser the dashboard targets takes it here.
        "/favicon.ico" => ("image/svg+xml", include_bytes!("assets/favicon.svg")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}
