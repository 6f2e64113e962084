//! IDX files (MNIST / Fashion-MNIST format): a hand-made pair, damaged files, and the real
//! Fashion-MNIST fetched by `scripts/fetch-assets.sh fashion-mnist` (the test fails when it is
//! missing).

use candle_core::Device;
use candle_explain_models::data::load_idx;
use std::io::Write;

fn write(name: &str, bytes: &[u8], gz: bool) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("candle-explain-idx-{}-{name}", std::process::id()));
    let mut f = std::fs::File::create(&p).unwrap();
    if gz {
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    } else {
        f.write_all(bytes).unwrap();
    }
    p
}

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(dims.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

#[test]
fn reads_a_hand_made_pair_and_rejects_damaged_files() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut img = header(2051, &[2, 2, 3]);
    img.extend([0u8, 1, 2, 3, 4, 5, 255, 254, 253, 252, 251, 250]);
    let mut lab = header(2049, &[2]);
    lab.extend([7u8, 3]);
    let (ip, lp) = (write("img.gz", &img, true), write("lab", &lab, false));
    let d = load_idx(&ip, &lp, &dev)?;
    assert_eq!(d.images.dims(), &[2, 1, 2, 3]);
    assert_eq!(d.labels, vec![7, 3]);
    assert_eq!(
        d.images.flatten_all()?.to_vec1::<f32>()?[6..8],
        [255.0, 254.0]
    );
    // Truncated images, a label count that does not match, a wrong magic number, a missing file.
    let short = write("short", &img[..img.len() - 1], false);
    assert!(load_idx(&short, &lp, &dev)
        .unwrap_err()
        .to_string()
        .contains("need 28 bytes"));
    let mut three = header(2049, &[3]);
    three.extend([1u8, 2, 3]);
    let three = write("three", &three, false);
    assert!(load_idx(&ip, &three, &dev)
        .unwrap_err()
        .to_string()
        .contains("expected 2 labels"));
    assert!(load_idx(&lp, &lp, &dev)
        .unwrap_err()
        .to_string()
        .contains("magic 2051"));
    assert!(
        load_idx(std::env::temp_dir().join("no-such-idx"), &lp, &dev)
            .unwrap_err()
            .to_string()
            .contains("fetch-assets.sh fashion-mnist")
    );
    for p in [ip, lp, short, three] {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

/// 60,000 training and 10,000 test images of 28×28, 10 balanced classes.
#[test]
fn reads_the_real_fashion_mnist() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let dir = candle_explain_models::assets::ensure("fashion-mnist")?;
    let dir = dir.display();
    for (split, n) in [("train", 60_000usize), ("t10k", 10_000)] {
        let d = load_idx(
            format!("{dir}/{split}-images-idx3-ubyte.gz"),
            format!("{dir}/{split}-labels-idx1-ubyte.gz"),
            &dev,
        )?;
        assert_eq!(d.images.dims(), &[n, 1, 28, 28]);
        let mut counts = [0usize; 10];
        d.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(
            counts.iter().all(|&c| c == n / 10),
            "{split}: class counts {counts:?}"
        );
    }
    Ok(())
}
