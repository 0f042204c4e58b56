//! The QR code as SVG markup, drawn in the browser.

use qrcode::{render::svg, EcLevel, QrCode};

/// SVG markup (no XML prolog, so it can go into HTML) for `data`, with the
/// standard four-module quiet zone so cameras find it on any background.
pub fn qr_svg(data: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)?;
    let markup = code
        .render::<svg::Color>()
        .quiet_zone(true)
        .min_dimensions(232, 232)
        .dark_color(svg::Color("#111827"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(match markup.find("<svg") {
        Some(start) => markup[start..].to_owned(),
        None => markup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_for_a_login_url() {
        let svg = qr_svg("http://127.0.0.1:3000/q/0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59").unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("viewBox"));
    }
}
