//! `culvert pipelines graph`: a pipeline as a picture, in Graphviz DOT or SVG.
//!
//! Records flow left to right: each source through its own processors, then (all sources
//! together) through the pipeline's processors, then to each destination through that
//! destination's processors. The dead-letter queue is a node of its own, reached by dashed
//! edges from every processor and destination whose failed records it takes. DOT is
//! written here; SVG is DOT laid out and rendered by the `layout-rs` crate (no Graphviz
//! needed).

use culvert_api::pb::api::v1 as pb;

/// What a picture of a pipeline is drawn from (as `pipelines describe` fetches it).
pub struct Detail {
    pub pipeline: pb::Pipeline,
    pub connectors: Vec<pb::Connector>,
    pub processors: Vec<pb::Processor>,
    pub dlq: pb::pipeline::Dlq,
}

/// The output format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT text (render with `dot -Tpng`, or paste into any DOT viewer).
    Dot,
    /// An SVG image.
    Svg,
}

/// A DOT string literal: quoted, with quotes and backslashes escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The processors of `ids`, in that order (ids with no processor listed are left out).
fn chain<'a>(detail: &'a Detail, ids: &[String]) -> Vec<&'a pb::Processor> {
    ids.iter()
        .filter_map(|id| detail.processors.iter().find(|p| &p.id == id))
        .collect()
}

/// The pipeline in Graphviz DOT.
pub fn dot(detail: &Detail) -> String {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let node = |nodes: &mut Vec<String>, id: &str, label: String, shape: &str| {
        nodes.push(format!(
            "  {} [label={}, shape={shape}];",
            quoted(id),
            quoted(&label)
        ));
    };
    let processor_node = |nodes: &mut Vec<String>, p: &pb::Processor| {
        let condition = p
            .condition
            .as_str()
            .trim()
            .chars()
            .take(40)
            .collect::<String>();
        let label = match condition.is_empty() {
            true => format!("processor\n{}\n{}", p.id, p.plugin),
            false => format!("processor\n{}\n{}\nif {condition}", p.id, p.plugin),
        };
        node(nodes, &p.id, label, "box");
    };
    let dlq_id = "dead-letter queue";
    let mut nacking: Vec<String> = Vec::new();

    // The pipeline's processors: a chain every source feeds and every destination reads.
    let pipeline_chain = chain(detail, &detail.pipeline.processor_ids);
    for p in &pipeline_chain {
        processor_node(&mut nodes, p);
        nacking.push(p.id.clone());
    }
    for pair in pipeline_chain.windows(2) {
        edges.push(format!(
            "  {} -> {};",
            quoted(&pair[0].id),
            quoted(&pair[1].id)
        ));
    }
    let (sources, destinations): (Vec<&pb::Connector>, Vec<&pb::Connector>) = detail
        .connectors
        .iter()
        .partition(|c| c.r#type == pb::connector::Type::Source as i32);
    // Where each source's chain ends; where each destination's chain starts.
    let mut source_ends = Vec::new();
    for source in &sources {
        node(
            &mut nodes,
            &source.id,
            format!("source\n{}\n{}", source.id, source.plugin),
            "ellipse",
        );
        let mut last = source.id.clone();
        for p in chain(detail, &source.processor_ids) {
            processor_node(&mut nodes, p);
            nacking.push(p.id.clone());
            edges.push(format!("  {} -> {};", quoted(&last), quoted(&p.id)));
            last = p.id.clone();
        }
        source_ends.push(last);
    }
    let mut destination_starts = Vec::new();
    for destination in &destinations {
        node(
            &mut nodes,
            &destination.id,
            format!("destination\n{}\n{}", destination.id, destination.plugin),
            "ellipse",
        );
        nacking.push(destination.id.clone());
        let processors = chain(detail, &destination.processor_ids);
        for p in &processors {
            processor_node(&mut nodes, p);
            nacking.push(p.id.clone());
        }
        let mut ids: Vec<&str> = processors.iter().map(|p| p.id.as_str()).collect();
        ids.push(&destination.id);
        for pair in ids.windows(2) {
            edges.push(format!("  {} -> {};", quoted(pair[0]), quoted(pair[1])));
        }
        destination_starts.push(ids[0].to_owned());
    }
    match (pipeline_chain.first(), pipeline_chain.last()) {
        (Some(first), Some(last)) => {
            for end in &source_ends {
                edges.push(format!("  {} -> {};", quoted(end), quoted(&first.id)));
            }
            for start in &destination_starts {
                edges.push(format!("  {} -> {};", quoted(&last.id), quoted(start)));
            }
        }
        _ => {
            for end in &source_ends {
                for start in &destination_starts {
                    edges.push(format!("  {} -> {};", quoted(end), quoted(start)));
                }
            }
        }
    }
    let dlq_plugin = match detail.dlq.plugin.is_empty() {
        true => "builtin:log".to_owned(),
        false => detail.dlq.plugin.clone(),
    };
    node(
        &mut nodes,
        dlq_id,
        format!(
            "dead-letter queue\n{dlq_plugin}\nwindow {} / nacks {}",
            detail.dlq.window_size, detail.dlq.window_nack_threshold
        ),
        "note",
    );
    for id in &nacking {
        edges.push(format!(
            "  {} -> {} [style=dashed, label=\"nack\"];",
            quoted(id),
            quoted(dlq_id)
        ));
    }
    let name = detail
        .pipeline
        .config
        .as_ref()
        .map(|c| c.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| detail.pipeline.id.clone());
    format!(
        "digraph {} {{\n  rankdir=LR;\n  label={};\n{}\n{}\n}}\n",
        quoted(&name),
        quoted(&format!("pipeline {name}")),
        nodes.join("\n"),
        edges.join("\n")
    )
}

/// DOT laid out and rendered as an SVG image.
pub fn svg(dot: &str) -> Result<String, String> {
    let mut parser = layout::gv::DotParser::new(dot);
    let graph = parser
        .process()
        .map_err(|e| format!("the graph does not parse as DOT: {e}"))?;
    let mut builder = layout::gv::GraphBuilder::new();
    builder.visit_graph(&graph);
    let mut visual = builder.get();
    let mut writer = layout::backends::svg::SVGWriter::new();
    visual.do_it(false, false, false, &mut writer);
    Ok(writer.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(id: &str, plugin: &str, parent: &str, condition: &str) -> pb::Processor {
        pb::Processor {
            id: id.into(),
            plugin: plugin.into(),
            condition: condition.into(),
            parent: Some(pb::processor::Parent {
                id: parent.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn connector(id: &str, kind: pb::connector::Type, processors: &[&str]) -> pb::Connector {
        pb::Connector {
            id: id.into(),
            r#type: kind as i32,
            plugin: "builtin:file".into(),
            processor_ids: processors.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn detail() -> Detail {
        Detail {
            pipeline: pb::Pipeline {
                id: "orders".into(),
                config: Some(pb::pipeline::Config {
                    name: "orders \"eu\"".into(),
                    ..Default::default()
                }),
                processor_ids: vec!["p2".into(), "p1".into()],
                ..Default::default()
            },
            connectors: vec![
                connector("in", pb::connector::Type::Source, &["sp"]),
                connector("out-a", pb::connector::Type::Destination, &[]),
                connector("out-b", pb::connector::Type::Destination, &["dp"]),
            ],
            processors: vec![
                processor("p1", "field.set", "orders", ""),
                processor("p2", "error", "orders", "{{ eq .Key \"x\" }}"),
                processor("sp", "base64.encode", "in", ""),
                processor("dp", "json.encode", "out-b", ""),
            ],
            dlq: pb::pipeline::Dlq {
                plugin: "builtin:file".into(),
                window_size: 3,
                window_nack_threshold: 1,
                ..Default::default()
            },
        }
    }

    #[test]
    fn records_flow_source_chain_pipeline_chain_destination_chains_and_nacks_go_to_the_dlq() {
        let dot = dot(&detail());
        for edge in [
            "\"in\" -> \"sp\";",
            "\"sp\" -> \"p2\";",
            "\"p2\" -> \"p1\";",
            "\"p1\" -> \"out-a\";",
            "\"p1\" -> \"dp\";",
            "\"dp\" -> \"out-b\";",
            "\"p2\" -> \"dead-letter queue\" [style=dashed",
            "\"out-b\" -> \"dead-letter queue\" [style=dashed",
        ] {
            assert!(dot.contains(edge), "no {edge} in\n{dot}");
        }
        assert!(!dot.contains("\"in\" -> \"out-a\""), "{dot}");
        assert!(dot.contains("digraph \"orders \\\"eu\\\"\""), "{dot}");
        assert!(dot.contains("window 3 / nacks 1"), "{dot}");
        assert!(dot.contains("if {{ eq .Key \\\"x\\\" }}"), "{dot}");
    }

    #[test]
    fn without_pipeline_processors_every_source_feeds_every_destination() {
        let mut detail = detail();
        detail.pipeline.processor_ids.clear();
        let dot = dot(&detail);
        assert!(dot.contains("\"sp\" -> \"out-a\";"), "{dot}");
        assert!(dot.contains("\"sp\" -> \"dp\";"), "{dot}");
    }

    #[test]
    fn the_svg_is_an_image_naming_every_node() {
        let svg = svg(&dot(&detail())).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        for id in [
            "in",
            "out-a",
            "out-b",
            "p1",
            "p2",
            "sp",
            "dp",
            "dead-letter queue",
        ] {
            assert!(svg.contains(id), "no {id} in the SVG");
        }
    }
}
