//! A component that reaches for what it may not have: the network (any
//! URL, any method, no redirects followed), files in and out of its
//! scratch directory, and its environment. The host's tests run it under
//! several policies and check each reach is refused or allowed exactly as
//! granted.
use std::io::Write;
use toolmesh_guest::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct HttpArgs {
    /// The URL.
    url: String,
    /// The method [default: GET].
    #[serde(default)]
    method: Option<String>,
    /// The largest body to read [default: 16 MiB].
    #[serde(default)]
    max_bytes: Option<u64>,
}

#[derive(Serialize, JsonSchema)]
struct HttpOut {
    status: u16,
    bytes: usize,
    location: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct PathArgs {
    /// A path as the guest sees it.
    path: String,
}

#[derive(Deserialize, JsonSchema)]
struct LinkArgs {
    /// Where the link points.
    target: String,
    /// The link's path.
    link: String,
    /// A path under the link to read.
    read: String,
}

#[derive(Deserialize, JsonSchema)]
struct WriteArgs {
    /// The file to write.
    path: String,
    /// How many bytes to write, in 1 MiB pieces.
    bytes: u64,
}

#[derive(Deserialize, JsonSchema)]
struct EnvArgs {
    /// The variable.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

fn http(args: HttpArgs) -> Result<Json<HttpOut>, ToolError> {
    let method = args.method.unwrap_or_else(|| "GET".into());
    let response = toolmesh_guest::http::send(&method, &args.url, args.max_bytes.unwrap_or(16 << 20))
        .map_err(|e| ToolError::failed(e.to_string()))?;
    let location = response.header("location").map(str::to_owned);
    Ok(Json(HttpOut { status: response.status, bytes: response.body.len(), location }))
}

fn read_file(args: PathArgs) -> Result<String, ToolError> {
    std::fs::read_to_string(&args.path).map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))
}

fn write_file(args: WriteArgs) -> Result<String, ToolError> {
    let mut file = std::fs::File::create(&args.path).map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
    let piece = vec![0x5a_u8; 1 << 20];
    let mut left = args.bytes;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        file.write_all(&piece[..n]).map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
        left -= n as u64;
    }
    file.sync_all().map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
    Ok(format!("wrote {} bytes", args.bytes))
}

fn write_unlinked(args: WriteArgs) -> Result<String, ToolError> {
    // Delete the file first, then fill it through the open descriptor.
    let mut file = std::fs::File::create(&args.path).map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
    std::fs::remove_file(&args.path).map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
    let piece = vec![0xa5_u8; 1 << 20];
    for _ in 0..args.bytes.div_ceil(1 << 20) {
        file.write_all(&piece).map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
        file.sync_all().map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
    }
    // Held open until the checks have had their chance to see it.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
    Ok(format!("wrote {} bytes to a deleted file", args.bytes))
}

fn symlink(args: LinkArgs) -> Result<String, ToolError> {
    // std's symlink for WASI is unstable; make it through the preopen.
    let (dir, relative) = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find_map(|(dir, root)| {
            let rest = args.link.strip_prefix(&root)?.trim_start_matches('/').to_owned();
            Some((dir, rest))
        })
        .ok_or_else(|| ToolError::failed(format!("{} is under no preopened directory", args.link)))?;
    dir.symlink_at(&args.target, &relative)
        .map_err(|e| ToolError::failed(format!("symlink {} -> {}: {e:?}", args.link, args.target)))?;
    std::fs::read_to_string(&args.read).map_err(|e| ToolError::failed(format!("{}: {e}", args.read)))
}

fn env(args: EnvArgs) -> Result<String, ToolError> {
    std::env::var(&args.name).map_err(|_| ToolError::failed(format!("{} is not set", args.name)))
}

fn env_names(_: NoArgs) -> Result<String, ToolError> {
    let mut names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    names.sort();
    Ok(names.join(","))
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("http", "Sends one request; redirects are returned, not followed.", http),
        Tool::new("read_file", "Reads a file.", read_file),
        Tool::new("write_file", "Writes `bytes` bytes to a file.", write_file),
        Tool::new("write_unlinked", "Deletes a file it holds open, then writes `bytes` bytes to it.", write_unlinked),
        Tool::new("symlink", "Makes a symlink, then reads a path through it.", symlink),
        Tool::new("env", "Reads an environment variable.", env),
        Tool::new("env_names", "Lists the environment's variable names.", env_names),
    ]
}

toolmesh_guest::export_tools!(tools);
