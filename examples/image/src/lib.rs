//! Image utilities for agents: inspect, resize, grayscale and thumbnail
//! PNG, JPEG, GIF and WebP images passed as base64.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use img::{DynamicImage, ImageFormat, ImageReader, Limits, imageops::FilterType};
use std::io::Cursor;
use toolmesh_guest::prelude::*;

/// Largest width or height the tool decodes or produces.
const MAX_SIDE: u32 = 8192;
/// Most memory a decode may take.
const MAX_DECODE_BYTES: u64 = 128 << 20;

/// Output encodings.
#[derive(Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    Png,
    Jpeg,
}

#[derive(Deserialize, JsonSchema)]
struct InfoArgs {
    /// The image, base64-encoded (a `data:` URL prefix is accepted).
    image: String,
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Info {
    /// Width in pixels.
    width: u32,
    /// Height in pixels.
    height: u32,
    /// The encoding, such as `png`.
    format: String,
    /// The pixel layout, such as `Rgba8`.
    color: String,
    /// Size of the encoded image in bytes.
    bytes: usize,
}

#[derive(Deserialize, JsonSchema)]
struct ResizeArgs {
    /// The image, base64-encoded (a `data:` URL prefix is accepted).
    image: String,
    /// Target width in pixels.
    width: u32,
    /// Target height in pixels.
    height: u32,
    /// Keep the aspect ratio, fitting inside width × height.
    #[serde(default = "yes")]
    keep_aspect: bool,
    /// Output encoding; by default PNG, or JPEG for a JPEG input.
    format: Option<Format>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, JsonSchema)]
struct GrayArgs {
    /// The image, base64-encoded (a `data:` URL prefix is accepted).
    image: String,
    /// Output encoding; by default PNG, or JPEG for a JPEG input.
    format: Option<Format>,
}

#[derive(Deserialize, JsonSchema)]
struct ThumbArgs {
    /// The image, base64-encoded (a `data:` URL prefix is accepted).
    image: String,
    /// Longest side of the thumbnail in pixels.
    #[serde(default = "default_thumb")]
    size: u32,
    /// Output encoding; by default PNG, or JPEG for a JPEG input.
    format: Option<Format>,
}

fn default_thumb() -> u32 {
    128
}

struct Decoded {
    image: DynamicImage,
    format: ImageFormat,
    bytes: usize,
}

fn decode(field_value: &str) -> Result<Decoded, ToolError> {
    let b64 = match field_value.split_once(";base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => field_value,
    };
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| ToolError::invalid_arguments(format_args!("field `image`: not base64: {e}")))?;
    let mut reader = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| ToolError::invalid_arguments(format_args!("field `image`: {e}")))?;
    let format = reader
        .format()
        .ok_or_else(|| ToolError::invalid_arguments("field `image`: not a PNG, JPEG, GIF or WebP image"))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| ToolError::invalid_arguments(format_args!("field `image`: {e}")))?;
    Ok(Decoded { image, format, bytes: bytes.len() })
}

fn encode(image: &DynamicImage, wanted: Option<Format>, input: ImageFormat) -> Result<Image, ToolError> {
    let format = wanted.unwrap_or(if input == ImageFormat::Jpeg { Format::Jpeg } else { Format::Png });
    let mut out = Cursor::new(Vec::new());
    let (result, mime) = match format {
        Format::Png => (image.write_to(&mut out, ImageFormat::Png), "image/png"),
        // JPEG has no alpha channel.
        Format::Jpeg => (DynamicImage::ImageRgb8(image.to_rgb8()).write_to(&mut out, ImageFormat::Jpeg), "image/jpeg"),
    };
    result.map_err(|e| ToolError::failed(format_args!("cannot encode the image: {e}")))?;
    Ok(Image { data: out.into_inner(), mime_type: mime.into() })
}

fn check_side(name: &str, value: u32) -> Result<(), ToolError> {
    if value == 0 || value > MAX_SIDE {
        return Err(ToolError::invalid_arguments(format_args!("field `{name}`: must be between 1 and {MAX_SIDE}")));
    }
    Ok(())
}

fn info(args: InfoArgs) -> Result<Json<Info>, ToolError> {
    let d = decode(&args.image)?;
    Ok(Json(Info {
        width: d.image.width(),
        height: d.image.height(),
        format: format!("{:?}", d.format).to_lowercase(),
        color: format!("{:?}", d.image.color()),
        bytes: d.bytes,
    }))
}

fn resize(args: ResizeArgs) -> Result<Image, ToolError> {
    check_side("width", args.width)?;
    check_side("height", args.height)?;
    let d = decode(&args.image)?;
    let resized = if args.keep_aspect {
        d.image.resize(args.width, args.height, FilterType::Lanczos3)
    } else {
        d.image.resize_exact(args.width, args.height, FilterType::Lanczos3)
    };
    encode(&resized, args.format, d.format)
}

fn grayscale(args: GrayArgs) -> Result<Image, ToolError> {
    let d = decode(&args.image)?;
    encode(&d.image.grayscale(), args.format, d.format)
}

fn thumbnail(args: ThumbArgs) -> Result<Image, ToolError> {
    check_side("size", args.size)?;
    let d = decode(&args.image)?;
    encode(&d.image.thumbnail(args.size, args.size), args.format, d.format)
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("info", "Reports an image's size, encoding and pixel layout.", info).read_only().idempotent(),
        Tool::new("resize", "Resizes an image (Lanczos), keeping its aspect ratio unless told not to.", resize)
            .read_only()
            .idempotent(),
        Tool::new("grayscale", "Converts an image to grayscale.", grayscale).read_only().idempotent(),
        Tool::new("thumbnail", "Makes a thumbnail whose longest side is `size` pixels.", thumbnail)
            .read_only()
            .idempotent(),
    ]
}

toolmesh_guest::export_tools!(tools);

#[cfg(test)]
mod tests {
    use super::*;
    use img::{GenericImageView, Rgba, RgbaImage};

    fn sample_png(w: u32, h: u32) -> String {
        let img = RgbaImage::from_fn(w, h, |x, y| Rgba([(x * 10) as u8, (y * 10) as u8, 200, 255]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img).write_to(&mut out, ImageFormat::Png).unwrap();
        STANDARD.encode(out.into_inner())
    }

    fn dims(image: &Image) -> (u32, u32) {
        img::load_from_memory(&image.data).unwrap().dimensions()
    }

    #[test]
    fn reports_info() {
        let Json(i) = info(InfoArgs { image: format!("data:image/png;base64,{}", sample_png(20, 10)) }).unwrap();
        assert_eq!((i.width, i.height, i.format.as_str(), i.color.as_str()), (20, 10, "png", "Rgba8"));
    }

    #[test]
    fn resizes_keeping_aspect() {
        let out =
            resize(ResizeArgs { image: sample_png(40, 20), width: 10, height: 10, keep_aspect: true, format: None })
                .unwrap();
        assert_eq!(out.mime_type, "image/png");
        assert_eq!(dims(&out), (10, 5));
    }

    #[test]
    fn resizes_exactly_to_jpeg() {
        let out = resize(ResizeArgs {
            image: sample_png(40, 20),
            width: 8,
            height: 8,
            keep_aspect: false,
            format: Some(Format::Jpeg),
        })
        .unwrap();
        assert_eq!(out.mime_type, "image/jpeg");
        assert_eq!(dims(&out), (8, 8));
    }

    #[test]
    fn grayscales() {
        let out = grayscale(GrayArgs { image: sample_png(4, 4), format: None }).unwrap();
        let decoded = img::load_from_memory(&out.data).unwrap();
        assert_eq!(format!("{:?}", decoded.color()), "La8");
    }

    #[test]
    fn thumbnails() {
        let out = thumbnail(ThumbArgs { image: sample_png(300, 150), size: 64, format: None }).unwrap();
        assert_eq!(dims(&out), (64, 32));
    }

    #[test]
    fn rejects_garbage_and_bad_sizes() {
        let err = info(InfoArgs { image: STANDARD.encode(b"hello") }).unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(m) if m.starts_with("field `image`")));
        let err = resize(ResizeArgs { image: sample_png(2, 2), width: 0, height: 1, keep_aspect: true, format: None })
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(m) if m.starts_with("field `width`")));
    }
}
