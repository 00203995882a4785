//! Files the caller sends with a run (`files` argument) and files the code
//! writes, kept in the interpreter's memory: a session keeps them between
//! its runs. What the code wrote during a run comes back with its report:
//! images as image content, other files in the report's `files`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bytes all files of one interpreter may hold together.
pub const MAX_HELD: usize = 32 << 20;

/// Bytes of written files one run returns, at most (the rest are listed
/// without their content).
pub const MAX_RETURNED: usize = 512 << 10;

/// A file the caller sends: its text, or its bytes in base64.
#[derive(Deserialize, JsonSchema, Debug, Clone)]
#[serde(untagged)]
pub enum FileArg {
    /// Text, stored as UTF-8.
    Text(String),
    /// Bytes.
    Binary {
        /// The bytes, in base64.
        base64: String,
        /// Their media type (guessed from the name if absent).
        #[serde(default)]
        mime_type: Option<String>,
    },
}

/// A file the code wrote, as the report lists it.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
pub struct Written {
    /// Its name.
    pub name: String,
    /// Its media type.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: usize,
    /// Its content when it is UTF-8 text (and fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its content in base64 when it is not text (and fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Returned as image content instead of here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image: bool,
}

struct File {
    data: Vec<u8>,
    mime_type: String,
    written: bool,
}

/// The files of one interpreter.
#[derive(Default)]
pub struct Files {
    files: BTreeMap<String, File>,
}

/// The media type a file's name suggests.
pub fn guess_mime(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "csv" => "text/csv",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "md" => "text/markdown",
        "txt" | "log" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Whether `name` can name a file: 1 to 255 bytes, no `/`, not `.` or `..`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && !name.contains(['/', '\\', '\0']) && name != "." && name != ".."
}

impl Files {
    /// Adds the files the caller sent (replacing same-named ones).
    pub fn receive(&mut self, sent: &BTreeMap<String, FileArg>) -> Result<(), String> {
        for (name, file) in sent {
            if !is_valid_name(name) {
                return Err(format!("`files` name {name:?} is not a usable file name"));
            }
            let (data, mime_type) = match file {
                FileArg::Text(text) => (text.as_bytes().to_vec(), None),
                FileArg::Binary { base64, mime_type } => {
                    let data = BASE64.decode(base64).map_err(|e| format!("`files` {name:?}: not base64: {e}"))?;
                    (data, mime_type.clone())
                }
            };
            let mime_type = mime_type.unwrap_or_else(|| guess_mime(name).to_owned());
            self.put(name, data, mime_type, false)?;
        }
        Ok(())
    }

    fn put(&mut self, name: &str, data: Vec<u8>, mime_type: String, written: bool) -> Result<(), String> {
        let others: usize = self.files.iter().filter(|(n, _)| n.as_str() != name).map(|(_, f)| f.data.len()).sum();
        if others + data.len() > MAX_HELD {
            return Err(format!("files may hold {} MiB in all; {name:?} would pass it", MAX_HELD >> 20));
        }
        self.files.insert(name.to_owned(), File { data, mime_type, written });
        Ok(())
    }

    /// Writes `name` from the code.
    pub fn write(&mut self, name: &str, data: Vec<u8>, mime_type: Option<String>) -> Result<(), String> {
        if !is_valid_name(name) {
            return Err(format!("{name:?} is not a usable file name (no `/`)"));
        }
        let mime_type = mime_type.unwrap_or_else(|| guess_mime(name).to_owned());
        self.put(name, data, mime_type, true)
    }

    /// The bytes of `name`.
    pub fn read(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|f| f.data.as_slice())
    }

    /// The names held.
    pub fn names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// The files written since the last call, for the report and as
    /// images (mime type, bytes); marks them returned.
    pub fn take_written(&mut self) -> (Vec<Written>, Vec<(String, Vec<u8>)>) {
        let (mut listed, mut images, mut budget) = (Vec::new(), Vec::new(), MAX_RETURNED);
        for (name, file) in self.files.iter_mut().filter(|(_, f)| f.written) {
            file.written = false;
            let size = file.data.len();
            let fits = size <= budget;
            let image = fits && file.mime_type.starts_with("image/");
            let text = if fits && !image { std::str::from_utf8(&file.data).ok().map(str::to_owned) } else { None };
            let base64 = if fits && !image && text.is_none() { Some(BASE64.encode(&file.data)) } else { None };
            if fits {
                // Base64 takes a third more room.
                budget -= if base64.is_some() { size * 4 / 3 } else { size };
            }
            if image {
                images.push((file.mime_type.clone(), file.data.clone()));
            }
            listed.push(Written { name: name.clone(), mime_type: file.mime_type.clone(), size, text, base64, image });
        }
        (listed, images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_in_and_written_ones_go_out_once() {
        let mut files = Files::default();
        let sent = BTreeMap::from([
            ("data.csv".to_owned(), FileArg::Text("a,b\n1,2\n".into())),
            ("logo.png".to_owned(), FileArg::Binary { base64: BASE64.encode([137, 80, 78, 71]), mime_type: None }),
        ]);
        files.receive(&sent).unwrap();
        assert_eq!(files.read("data.csv"), Some(&b"a,b\n1,2\n"[..]));
        assert_eq!(files.names(), ["data.csv", "logo.png"]);
        assert!(files.take_written().0.is_empty(), "what the caller sent is not sent back");
        files.write("out.txt", b"hi".to_vec(), None).unwrap();
        files.write("chart.svg", b"<svg/>".to_vec(), None).unwrap();
        files.write("blob.bin", vec![0, 255], None).unwrap();
        let (listed, images) = files.take_written();
        assert_eq!(images, [("image/svg+xml".to_owned(), b"<svg/>".to_vec())]);
        let by_name: BTreeMap<_, _> = listed.iter().map(|w| (w.name.as_str(), w)).collect();
        assert_eq!(by_name["out.txt"].text.as_deref(), Some("hi"));
        assert_eq!(by_name["blob.bin"].base64.as_deref(), Some("AP8="));
        assert!(by_name["chart.svg"].image);
        assert!(files.take_written().0.is_empty());
        assert!(files.write("../etc/passwd", vec![], None).is_err());
        assert!(files.write("big", vec![0; MAX_HELD + 1], None).is_err());
        let bad = BTreeMap::from([("x".to_owned(), FileArg::Binary { base64: "%%".into(), mime_type: None })]);
        assert!(files.receive(&bad).is_err());
    }
}
