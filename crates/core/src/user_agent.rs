//! A readable name for the device behind a `User-Agent` header ("Firefox on Windows"), for
//! people looking at their sessions. Only what a person would recognise is read: the browser
//! family and the operating system. An unknown header is named as such, never shown raw.

/// Browsers in the order they must be tested: many user agents name several (Edge and Opera
/// also say "Chrome" and "Safari"; Chrome also says "Safari").
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-requests/", "Python requests"),
];

/// Operating systems, likewise in order (Android also says "Linux"; iOS says "Mac OS X").
const SYSTEMS: &[(&str, &str)] = &[
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
];

/// "Browser on system", either part alone when only it is known, or "Unknown device".
pub fn describe(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent else {
        return "Unknown device".to_owned();
    };
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(marker, _)| agent.contains(marker))
            .map(|(_, name)| *name)
    };
    let headless = agent.contains("HeadlessChrome/");
    let browser = if headless {
        Some("Headless Chrome")
    } else {
        find(BROWSERS)
    };
    match (browser, find(SYSTEMS)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => "Unknown device".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn names_the_browser_and_system_people_recognise() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
                "Chrome on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
                "Headless Chrome on Linux",
            ),
            ("curl/8.5.0", "curl"),
            ("something else entirely", "Unknown device"),
        ];
        for (agent, expected) in cases {
            assert_eq!(describe(Some(agent)), expected, "{agent}");
        }
        assert_eq!(describe(None), "Unknown device");
    }
}
