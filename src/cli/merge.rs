//! `atlas merge`: one run folder from the shards of a sharded collection.
use std::path::PathBuf;

use anyhow::Result;

use atlas::collect::merge::merge_shards;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder to write: byte for byte what an unsharded `atlas collect` writes.
    #[arg(long)]
    out: PathBuf,
    /// The shards' folders (from `atlas collect --shard i/N`), every index of 0..N once, in
    /// any order.
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let m = merge_shards(&args.out, &args.shards)?;
    let out = args.out.display();
    println!(
        "merged {} shards into {out} in {:.1} s: {} images, {} problems (see {out}/problems.csv)",
        args.shards.len(),
        started.elapsed().as_secs_f64(),
        m.images_done,
        m.problems,
    );
    for l in &m.layers {
        println!(
            "  {:<16} {:>7} rows x {:>5} channels  {out}/{}",
            l.name, l.rows, l.channels, l.dir
        );
    }
    Ok(())
}
