fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let model = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let t = std::time::Instant::now();
    let tr = echo_speech::transcriber::Transcriber::new(&model, Default::default())?;
    println!("load {:?}", t.elapsed());
    for f in std::env::args().skip(2) {
        let p = std::path::PathBuf::from(&f);
        let t = std::time::Instant::now();
        println!("{:?}", echo_speech::audio::probe(&p));
        let s = echo_speech::audio::decode_to_mono_16k(&p)?;
        println!(
            "decoded {} samples ({:.3}s) in {:?}",
            s.len(),
            s.len() as f64 / 16000.0,
            t.elapsed()
        );
        let t = std::time::Instant::now();
        let segs = tr.transcribe(&s)?;
        println!("{segs:#?} in {:?}", t.elapsed());
    }
    Ok(())
}
