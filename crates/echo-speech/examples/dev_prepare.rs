fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let t = std::time::Instant::now();
    let m = echo_speech::model::prepare(&dir, std::env::args().nth(2).is_some())?;
    println!("{m:?} in {:?}", t.elapsed());
    Ok(())
}
