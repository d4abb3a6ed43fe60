//! `--log.level`: a level (`info`), or tracing filter directives where a module may be named
//! by its short name: `engine=debug,api=info` means `culvert_engine=debug,culvert_api=info`.

/// Culvert's modules by the short names `--log.level` accepts, with their tracing targets.
const MODULES: &[(&str, &str)] = &[
    ("api", "culvert_api"),
    ("commands", "culvert_commands"),
    ("connectors", "culvert_connectors"),
    ("domain", "culvert_domain"),
    ("engine", "culvert_engine"),
    ("hosts", "culvert_hosts"),
    ("migrations", "culvert_migrations"),
    ("plugins", "culvert_plugins"),
    ("processors", "culvert_processors"),
    ("projections", "culvert_projections"),
    ("provisioning", "culvert_provisioning"),
    ("secrets", "culvert_secrets"),
    ("store", "culvert_store"),
    ("supervisor", "culvert_supervisor"),
    ("template", "culvert_template"),
    ("server", "culvert"),
];

/// The tracing filter for `--log.level`: each `module=level` directive whose module is a
/// short name above gets the module's target; everything else is kept as written.
pub fn directives(level: &str) -> String {
    level
        .split(',')
        .map(|directive| {
            let directive = directive.trim();
            match directive.split_once('=') {
                Some((module, rest)) => {
                    // `engine[span{field}]=debug`: the short name is what precedes `[`.
                    let (name, suffix) = module
                        .find('[')
                        .map_or((module, ""), |at| module.split_at(at));
                    match MODULES.iter().find(|(short, _)| *short == name.trim()) {
                        Some((_, target)) => format!("{target}{suffix}={rest}"),
                        None => directive.to_owned(),
                    }
                }
                None => directive.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_module_names_become_their_targets() {
        assert_eq!(directives("info"), "info");
        assert_eq!(
            directives("warn,engine=debug, api=info"),
            "warn,culvert_engine=debug,culvert_api=info"
        );
        assert_eq!(
            directives("engine[pipeline{id=p}]=trace"),
            "culvert_engine[pipeline{id=p}]=trace"
        );
        assert_eq!(directives("hyper=warn"), "hyper=warn");
        assert_eq!(directives("culvert_store=debug"), "culvert_store=debug");
        for (_, target) in MODULES {
            tracing_subscriber::EnvFilter::try_new(format!("{target}=debug")).unwrap();
        }
    }
}
