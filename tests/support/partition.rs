//! Where a key lands: the partitioner echo's producers use (`murmur2_random`, the Java
//! client's default), so a test can put two resources on the same partition on purpose.

pub use echo_catalog::keys::{murmur2, partition_of};

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
    fn a_chosen_resource_id_lands_on_the_asked_partition() {
        for partition in 0..6 {
            let id = resource_id_on(partition, 6);
            assert_eq!(partition_of(&id, 6), partition);
            assert!(uuid::Uuid::parse_str(&id).is_ok());
        }
    }
}
