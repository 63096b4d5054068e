//! Where a key lands: the partitioner echo's producers use (`murmur2_random`, the Java
//! client's default), so a test can put two resources on the same partition on purpose.

/// Kafka's murmur2 hash of `key` (the Java client's `Utils.murmur2`, which librdkafka's
/// `murmur2_random` partitioner reproduces for non-null keys).
pub fn murmur2(key: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ key.len() as u32;
    let mut words = key.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions`: the positive part of its murmur2 hash, modulo
/// the partition count, as the producer computes it.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions
}

/// A fresh resource id (a UUID, like the ones clients generate) whose records land on
/// `partition` of topics with `partitions` partitions.
pub fn resource_id_on(partition: i32, partitions: i32) -> String {
    loop {
        let id = uuid::Uuid::new_v4().to_string();
        if partition_of(&id, partitions) == partition {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients_test_vectors() {
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn a_chosen_resource_id_lands_on_the_asked_partition() {
        for partition in 0..6 {
            let id = resource_id_on(partition, 6);
            assert_eq!(partition_of(&id, 6), partition);
            assert!(uuid::Uuid::parse_str(&id).is_ok());
        }
    }
}
