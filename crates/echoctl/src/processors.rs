//! Every processor this binary runs, in pipeline order: the one table `echoctl run`,
//! `echoctl processors`, `echoctl topology` and the Kubernetes check read. Each entry is
//! declared beside its processor; adding a processor means adding its line here and its entry
//! in topics/topics.toml (a test holds the two equal).

use echo_runtime::Registration;

/// The registered processors.
pub const PROCESSORS: &[Registration] = &[
    echo_upload::REGISTRATION,
    echo_quota::REGISTRATION,
    echo_validation::REGISTRATION,
    echo_chunk_worker::REGISTRATION,
    echo_chunk_worker::EXPRESS_REGISTRATION,
    echo_job_aggregator::REGISTRATION,
    echo_transcription::REGISTRATION,
    echo_resource::REGISTRATION,
];

/// The registered processor called `name`.
pub fn find(name: &str) -> Option<&'static Registration> {
    PROCESSORS.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_registers_every_processor_of_the_catalogue_once_in_its_order() {
        let catalogue = echo_catalog::Catalogue::load().unwrap();
        let declared: Vec<&str> = catalogue
            .processors
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let registered: Vec<&str> = PROCESSORS.iter().map(|r| r.name).collect();
        assert_eq!(registered, declared);
    }
}
