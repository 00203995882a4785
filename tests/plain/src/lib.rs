//! A plain-WIT component: it exports `test:plain/values`, `test:plain/bench`
//! and a free function, and knows nothing of toolmesh. The host's tests
//! call every function through the JSON a model would send.

wit_bindgen::generate!({ world: "plain", path: "wit", generate_all });

use exports::test::plain::values::{self, Color, Everything, Permissions, Shape};
use exports::test::plain::{bench, files};

struct Plain;

impl Guest for Plain {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

impl values::Guest for Plain {
    fn echo(value: Everything) -> Everything {
        value
    }

    fn area(shape: Shape) -> f64 {
        match shape {
            Shape::Circle(r) => std::f64::consts::PI * r * r,
            Shape::Rectangle((a, b)) => ((b.x - a.x) * (b.y - a.y)).abs(),
            Shape::Nothing => 0.0,
        }
    }

    fn divide(dividend: i32, divisor: i32) -> Result<i32, String> {
        dividend.checked_div(divisor).ok_or_else(|| format!("cannot divide {dividend} by {divisor}"))
    }

    fn greet(name: String, times: Option<u8>) -> String {
        vec![format!("Hello, {name}!"); usize::from(times.unwrap_or(1))].join(" ")
    }

    fn describe(color: Color, permissions: Permissions) -> (String, u32) {
        let name = match color {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
        };
        (format!("{name} {:?}", permissions), permissions.bits().count_ones())
    }

    fn count_bytes(blob: Vec<u8>) -> u64 {
        blob.len() as u64
    }

    fn check(positive: i64) -> Result<(), String> {
        if positive > 0 { Ok(()) } else { Err(format!("{positive} is not positive")) }
    }

    fn crash(message: String) {
        panic!("{message}")
    }
}

impl bench::Guest for Plain {
    fn echo_text(text: String) -> String {
        text
    }

    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

impl files::Guest for Plain {
    fn read(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
    }

    fn write(path: String, text: String) -> Result<(), String> {
        std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))
    }

    fn list_dir(path: String) -> Result<Vec<String>, String> {
        let entries = std::fs::read_dir(&path).map_err(|e| format!("{path}: {e}"))?;
        let mut names: Vec<String> =
            entries.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect();
        names.sort();
        Ok(names)
    }

    fn config(key: String) -> Option<String> {
        wasi::config::store::get(&key).ok().flatten()
    }
}

export!(Plain);
