//! Push and pull throughput of the registry on loopback, against a plain
//! file copy on the same disk (both synced to disk, as the registry syncs
//! every blob).
//!
//! Run with `cargo bench -p toolmesh-registry --bench transfer`; it prints a
//! Markdown table. Each push sends new content (the existence check would
//! otherwise skip the upload).

use bytes::Bytes;
use std::io::Write;
use std::time::{Duration, Instant};
use toolmesh_registry::api::{AccessConfig, router};
use toolmesh_registry::client::Client;
use toolmesh_registry::name::Repository;
use toolmesh_registry::store::{FsStore, StoreConfig};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn unique(size: usize, i: u64) -> Bytes {
    let mut data = vec![0x5au8; size];
    data[..8].copy_from_slice(&i.to_le_bytes());
    Bytes::from(data)
}

fn copy_synced(from: &std::path::Path, to: &std::path::Path) -> Duration {
    let started = Instant::now();
    let bytes = std::fs::read(from).unwrap();
    let mut file = std::fs::File::create(to).unwrap();
    file.write_all(&bytes).unwrap();
    file.sync_all().unwrap();
    started.elapsed()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store =
        FsStore::open(dir.path().join("data"), StoreConfig { max_blob: 1 << 30, ..StoreConfig::default() }).unwrap();
    let access = AccessConfig { push_tokens: vec!["bench".into()], ..AccessConfig::default() };
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(store, access)).await });
        url
    });
    let client = Client::new(&url, Some("bench".into())).unwrap();
    let repo: Repository = "bench/blobs".parse().unwrap();

    println!("| size | push | pull | file copy | push / copy | pull / copy |");
    println!("|---|---|---|---|---|---|");
    let mut counter = 0u64;
    for (label, size, rounds) in [("1 MiB", 1usize << 20, 30), ("256 MiB", 256 << 20, 3)] {
        let (mut push, mut pull, mut copy) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            counter += 1;
            let data = unique(size, counter);
            let started = Instant::now();
            let digest = runtime.block_on(client.push_blob(&repo, data.clone(), &|_| {})).unwrap();
            push.push(started.elapsed());
            let started = Instant::now();
            let pulled = runtime.block_on(client.pull_blob(&repo, &digest)).unwrap();
            pull.push(started.elapsed());
            assert_eq!(pulled.len(), size);
            let src = dir.path().join("src");
            std::fs::write(&src, &data).unwrap();
            copy.push(copy_synced(&src, &dir.path().join("dst")));
        }
        let (push, pull, copy) = (median(push), median(pull), median(copy));
        println!(
            "| {label} | {:.1} ms ({:.0} MiB/s) | {:.1} ms ({:.0} MiB/s) | {:.1} ms ({:.0} MiB/s) | {:.2} | {:.2} |",
            push.as_secs_f64() * 1e3,
            mib_per_s(size, push),
            pull.as_secs_f64() * 1e3,
            mib_per_s(size, pull),
            copy.as_secs_f64() * 1e3,
            mib_per_s(size, copy),
            push.as_secs_f64() / copy.as_secs_f64(),
            pull.as_secs_f64() / copy.as_secs_f64(),
        );
    }
}
