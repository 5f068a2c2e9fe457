//! The texts of an event each detector family scans, read from its wire bytes
//! (as `aiaudit.alerting.detectors.base` lists them from a message).

use crate::detect::Text;
use crate::rules::fields::Node;
use crate::schema::Schema;
use crate::wire::Raw;
use crate::Error;

/// A field's number and, for a message field, its type.
#[derive(Clone, Copy)]
struct F(u32, usize);

/// Field numbers of the text-bearing fields, resolved once by name.
pub struct TextFields {
    input: F,
    output: F,
    tool_call: F,
    system_instructions: F,
    in_messages: F,
    retrieved_context: F,
    chunk_content: u32,
    role: u32,
    parts: F,
    part_text: u32,
    part_media: F,
    media_type: u32,
    media_data: u32,
    out_messages: F,
    reasoning: u32,
    tool_calls: F,
    arguments: u32,
    result: u32,
    role_system: u64,
}

fn find(schema: &Schema, ty: usize, name: &str) -> Result<F, Error> {
    let m = &schema.messages[ty];
    let f = m
        .by_name(name)
        .map(|i| &m.fields[i])
        .ok_or_else(|| Error::new(format!("{}: no field {name}", m.name)))?;
    Ok(F(f.number, f.message.unwrap_or(0)))
}

impl TextFields {
    pub fn new(schema: &Schema, root: usize) -> Result<Self, Error> {
        let input = find(schema, root, "input")?;
        let output = find(schema, root, "output")?;
        let tool_call = find(schema, root, "tool_call")?;
        let in_messages = find(schema, input.1, "messages")?;
        let retrieved_context = find(schema, input.1, "retrieved_context")?;
        let parts = find(schema, in_messages.1, "parts")?;
        let part_media = find(schema, parts.1, "media")?;
        let out_messages = find(schema, output.1, "messages")?;
        let tool_calls = find(schema, output.1, "tool_calls")?;
        let role = schema.messages[in_messages.1]
            .by_name("role")
            .map(|i| &schema.messages[in_messages.1].fields[i])
            .ok_or_else(|| Error::new("Message: no role"))?;
        let role_system = role
            .enum_numbers
            .get("ROLE_SYSTEM")
            .ok_or_else(|| Error::new("Role: no ROLE_SYSTEM"))?;
        Ok(TextFields {
            input,
            output,
            tool_call,
            system_instructions: find(schema, input.1, "system_instructions")?,
            in_messages,
            retrieved_context,
            chunk_content: find(schema, retrieved_context.1, "content")?.0,
            role: role.number,
            parts,
            part_text: find(schema, parts.1, "text")?.0,
            part_media,
            media_type: find(schema, part_media.1, "mime_type")?.0,
            media_data: find(schema, part_media.1, "data")?.0,
            out_messages,
            reasoning: find(schema, output.1, "reasoning")?.0,
            tool_calls,
            arguments: find(schema, tool_calls.1, "arguments")?.0,
            result: find(schema, tool_call.1, "result")?.0,
            role_system: *role_system as u64,
        })
    }
}

/// A part's text, else its inline media's when of a textual type (true: from the media).
fn part(t: &TextFields, p: &Node<'_>) -> Result<(String, bool), Error> {
    let text = string(p, t.part_text)?;
    if !text.is_empty() {
        return Ok((text, false));
    }
    let Some(media) = p.one(t.part_media.0)? else {
        return Ok((text, false));
    };
    let Some(Raw::Len(data)) = media.raw(t.media_data)?.into_iter().last() else {
        return Ok((text, false));
    };
    let read = crate::media_text::read(&string(&media, t.media_type)?, data);
    Ok((read.map(|m| m.text).unwrap_or_default(), true))
}

/// `text` or `media.data`: where in a part its text came from.
fn leaf(media: bool) -> &'static str {
    if media {
        "media.data"
    } else {
        "text"
    }
}

/// The last occurrence of a string field ("" when absent).
fn string(node: &Node<'_>, number: u32) -> Result<String, Error> {
    Ok(match node.raw(number)?.into_iter().last() {
        Some(Raw::Len(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    })
}

fn role(node: &Node<'_>, number: u32) -> Result<u64, Error> {
    Ok(match node.raw(number)?.into_iter().last() {
        Some(Raw::Varint(v)) => v,
        _ => 0,
    })
}

/// An event's texts: untrusted input, output, and the system prompt.
#[derive(Default)]
pub struct EventTexts {
    pub inputs: Vec<Text>,
    pub outputs: Vec<Text>,
    pub system: Vec<String>,
}

fn push(out: &mut Vec<Text>, field: impl FnOnce() -> String, text: String) {
    if !text.is_empty() {
        out.push(Text {
            field: field(),
            text,
        });
    }
}

impl EventTexts {
    pub fn read(t: &TextFields, event: &Node<'_>) -> Result<Self, Error> {
        let mut out = EventTexts::default();
        let input = event.one(t.input.0)?;
        let output = event.one(t.output.0)?;
        let tool_call = event.one(t.tool_call.0)?;
        if let Some(input) = &input {
            for p in input.each(t.system_instructions.0)? {
                let (text, _) = part(t, &p)?;
                if !text.is_empty() {
                    out.system.push(text);
                }
            }
            for (i, m) in input.each(t.in_messages.0)?.iter().enumerate() {
                let system = role(m, t.role)? == t.role_system;
                for (j, p) in m.each(t.parts.0)?.iter().enumerate() {
                    let (text, media) = part(t, p)?;
                    if system {
                        if !text.is_empty() {
                            out.system.push(text);
                        }
                    } else {
                        push(
                            &mut out.inputs,
                            || format!("input.messages[{i}].parts[{j}].{}", leaf(media)),
                            text,
                        );
                    }
                }
            }
            let chunks = input.each(t.retrieved_context.0)?;
            for (i, c) in chunks.iter().enumerate() {
                let text = string(c, t.chunk_content)?;
                push(
                    &mut out.inputs,
                    || format!("input.retrieved_context[{i}].content"),
                    text,
                );
            }
        }
        if let Some(call) = &tool_call {
            push(
                &mut out.inputs,
                || "tool_call.result".into(),
                string(call, t.result)?,
            );
        }
        if let Some(output) = &output {
            for (i, m) in output.each(t.out_messages.0)?.iter().enumerate() {
                for (j, p) in m.each(t.parts.0)?.iter().enumerate() {
                    let (text, media) = part(t, p)?;
                    push(
                        &mut out.outputs,
                        || format!("output.messages[{i}].parts[{j}].{}", leaf(media)),
                        text,
                    );
                }
            }
            push(
                &mut out.outputs,
                || "output.reasoning".into(),
                string(output, t.reasoning)?,
            );
            for (i, c) in output.each(t.tool_calls.0)?.iter().enumerate() {
                let text = string(c, t.arguments)?;
                push(
                    &mut out.outputs,
                    || format!("output.tool_calls[{i}].arguments"),
                    text,
                );
            }
        }
        if let Some(call) = &tool_call {
            push(
                &mut out.outputs,
                || "tool_call.arguments".into(),
                string(call, t.arguments)?,
            );
        }
        Ok(out)
    }
}
