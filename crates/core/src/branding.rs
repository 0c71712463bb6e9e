//! A tenant's branding: the colour of its buttons and links, and its logo, on the sign-in
//! pages, the account pages, the console and the messages it sends. Only what can be shown
//! safely is accepted: a colour white text stays readable on, and a raster image (an SVG can
//! carry script).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The largest logo accepted, in bytes.
pub const MAX_LOGO_BYTES: usize = 100 * 1024;

/// The least contrast between the brand colour and white (WCAG 2 AA for normal text), since
/// buttons carry white text on it and links are that colour on white.
const MIN_CONTRAST: f64 = 4.5;

/// A colour as `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour([u8; 3]);

impl Colour {
    /// Parses `#rrggbb` and checks white text is readable on it.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        let hex = text
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ValidationError::new(field, "must be a colour written as #rrggbb, e.g. #0b57d0")
            })?;
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_default();
        let colour = Self([channel(0), channel(2), channel(4)]);
        let contrast = colour.contrast_with_white();
        if contrast < MIN_CONTRAST {
            return Err(ValidationError::new(
                field,
                format!(
                    "is too light: white text on it has a contrast of {contrast:.1}:1 and must have at least {MIN_CONTRAST}:1; choose a darker shade"
                ),
            ));
        }
        Ok(colour)
    }

    /// WCAG 2 relative luminance.
    fn luminance(self) -> f64 {
        let linear = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0;
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    fn contrast_with_white(self) -> f64 {
        1.05 / (self.luminance() + 0.05)
    }

    /// The colour mixed with `other`, `share` of which (0–1) is `other`.
    fn mixed(self, other: [u8; 3], share: f64) -> Self {
        let mix = |a: u8, b: u8| {
            (f64::from(a) * (1.0 - share) + f64::from(b) * share)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        Self([
            mix(self.0[0], other[0]),
            mix(self.0[1], other[1]),
            mix(self.0[2], other[2]),
        ])
    }

    /// A darker shade for hover, darker still than the colour so contrast only grows.
    pub fn hover(self) -> Self {
        self.mixed([0, 0, 0], 0.2)
    }

    /// A pale tint for backgrounds under text of the ink colour.
    pub fn tint(self) -> Self {
        self.mixed([255, 255, 255], 0.9)
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

/// The kinds of image a logo may be: raster formats browsers and mail readers show, never SVG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LogoType {
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/webp")]
    Webp,
}

impl LogoType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Webp]
            .into_iter()
            .find(|t| t.as_str() == text)
    }

    /// What the bytes are, from their signature; the declared type is not trusted.
    fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

/// A logo as uploaded: its bytes and the type they turned out to be.
#[derive(Clone, PartialEq, Eq)]
pub struct Logo {
    pub media_type: LogoType,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("media_type", &self.media_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Logo {
    /// Checks an upload: at most [`MAX_LOGO_BYTES`], and a PNG, JPEG or WebP by its content.
    pub fn from_upload(field: &'static str, bytes: Vec<u8>) -> Result<Self, ValidationError> {
        if bytes.is_empty() {
            return Err(ValidationError::new(
                field,
                "is empty: choose an image file",
            ));
        }
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(ValidationError::new(
                field,
                format!(
                    "is {} KiB; a logo may be at most {} KiB (a PNG about 200 pixels wide is plenty)",
                    bytes.len().div_ceil(1024),
                    MAX_LOGO_BYTES / 1024
                ),
            ));
        }
        let media_type = LogoType::sniff(&bytes).ok_or_else(|| {
            ValidationError::new(
                field,
                "must be a PNG, JPEG or WebP image (SVG is not accepted: it can carry script)",
            )
        })?;
        Ok(Self { media_type, bytes })
    }

    /// Parses a `data:image/…;base64,…` URL, the form the API takes a logo in.
    pub fn from_data_url(field: &'static str, url: &str) -> Result<Self, ValidationError> {
        use base64::Engine as _;
        let invalid = || {
            ValidationError::new(
                field,
                "must be a data URL of a PNG, JPEG or WebP image: data:image/png;base64,…",
            )
        };
        // Far larger than any logo we keep: refuse before decoding.
        if url.len() > MAX_LOGO_BYTES * 2 {
            return Err(ValidationError::new(
                field,
                format!(
                    "is too large; a logo may be at most {} KiB",
                    MAX_LOGO_BYTES / 1024
                ),
            ));
        }
        let (head, data) = url
            .strip_prefix("data:")
            .and_then(|rest| rest.split_once(','))
            .ok_or_else(invalid)?;
        let declared = head.strip_suffix(";base64").ok_or_else(invalid)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| invalid())?;
        let logo = Self::from_upload(field, bytes)?;
        if LogoType::parse(declared) != Some(logo.media_type) {
            return Err(ValidationError::new(
                field,
                format!(
                    "says {declared} but holds a {}; name the type it is",
                    logo.media_type.as_str()
                ),
            ));
        }
        Ok(logo)
    }

    /// A short digest of the bytes, to name this version of the logo in addresses (so caches
    /// keep it for long and a new one is fetched at once).
    pub fn digest(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.bytes);
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A tenant's branding as kept and shown: the colour, and the logo's type and digest (its
/// bytes are read only when the image itself is asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branding {
    pub colour: Option<Colour>,
    pub logo: Option<(LogoType, String)>,
}

impl Branding {
    /// Names this branding (an HTTP entity tag): it changes exactly when the style sheet does.
    pub fn tag(&self) -> String {
        let colour = self
            .colour
            .map_or_else(|| "default".into(), |c| c.to_string());
        let logo = self
            .logo
            .as_ref()
            .map_or("none", |(_, digest)| digest.as_str());
        format!("\"{}-{logo}\"", colour.trim_start_matches('#'))
    }

    /// The style sheet that applies it over the design system's defaults; empty without a
    /// colour or logo.
    pub fn style_sheet(&self, tenant: &str) -> String {
        let mut css = String::new();
        if let Some(colour) = self.colour {
            css.push_str(&format!(
                ":root {{ --primary: {colour}; --primary-hover: {}; --primary-tint: {}; }}\n",
                colour.hover(),
                colour.tint()
            ));
        }
        if let Some((_, digest)) = &self.logo {
            css.push_str(&format!(
                ".brand-logo {{ display: block; background-image: url(\"/t/{tenant}/branding/logo?v={digest}\"); }}\n"
            ));
        }
        css
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_must_be_dark_enough_for_white_text() {
        assert_eq!(
            Colour::parse("colour", "#0B57D0").unwrap().to_string(),
            "#0b57d0"
        );
        let pale = Colour::parse("colour", "#ffd700").unwrap_err();
        assert!(pale.message.contains("too light"), "{}", pale.message);
        for bad in [
            "0b57d0",
            "#0b57d",
            "#0b57d0ff",
            "#gg0000",
            "",
            "red",
            "#ＡＡＡＡＡＡ",
        ] {
            assert!(Colour::parse("colour", bad).is_err(), "{bad}");
        }
        // The hover shade is darker, so it is at least as readable; the tint is light.
        let brand = Colour::parse("colour", "#0b57d0").unwrap();
        assert!(brand.hover().contrast_with_white() > brand.contrast_with_white());
        assert!(brand.tint().contrast_with_white() < 1.5);
    }

    #[test]
    fn a_logo_is_a_raster_image_by_its_content_and_small() {
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        assert_eq!(
            Logo::from_upload("logo", png.clone()).unwrap().media_type,
            LogoType::Png
        );
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
        assert!(Logo::from_upload("logo", svg.to_vec()).is_err());
        assert!(Logo::from_upload("logo", Vec::new()).is_err());
        let mut big = png.clone();
        big.resize(MAX_LOGO_BYTES + 1, 0);
        let refused = Logo::from_upload("logo", big).unwrap_err();
        assert!(
            refused.message.contains("at most 100 KiB"),
            "{}",
            refused.message
        );

        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&png);
        assert!(Logo::from_data_url("logo", &format!("data:image/png;base64,{encoded}")).is_ok());
        // A PNG declared as something else, or not base64, or not a data URL, is refused.
        assert!(Logo::from_data_url("logo", &format!("data:image/jpeg;base64,{encoded}")).is_err());
        assert!(Logo::from_data_url("logo", &format!("data:image/png,{encoded}")).is_err());
        assert!(Logo::from_data_url("logo", "https://example.com/logo.png").is_err());
        assert!(Logo::from_data_url("logo", "data:image/png;base64,@@@").is_err());
    }

    #[test]
    fn the_style_sheet_carries_only_what_is_set() {
        assert_eq!(Branding::default().style_sheet("acme"), "");
        assert_eq!(Branding::default().tag(), "\"default-none\"");
        let branding = Branding {
            colour: Some(Colour::parse("colour", "#7b1fa2").unwrap()),
            logo: Some((LogoType::Png, "00112233aabbccdd".into())),
        };
        let css = branding.style_sheet("acme");
        assert!(css.contains("--primary: #7b1fa2;"), "{css}");
        assert!(
            css.contains("url(\"/t/acme/branding/logo?v=00112233aabbccdd\")"),
            "{css}"
        );
    }
}
