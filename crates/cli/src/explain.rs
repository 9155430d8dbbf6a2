//! `wua explain`: what a result code (or an enum member) means.

use std::io::{self, Write};

use anyhow::bail;
use openwua_model::enums::EnumTable;
use openwua_model::hresult::HResult;
use serde::Serialize;

use crate::exit;

/// One explained argument, as JSON prints it.
#[derive(Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
enum Explanation {
    /// A result code, known or not.
    Code {
        hresult: HResult,
        name: Option<&'static str>,
        unsigned: u32,
        signed: i32,
        severity: &'static str,
        facility: u16,
        facility_name: Option<&'static str>,
        component: Option<&'static str>,
        message: &'static str,
    },
    /// A member of one of WUA's enumerations.
    EnumMember {
        #[serde(rename = "enum")]
        enumeration: &'static str,
        member: &'static str,
        value: i32,
    },
}

pub fn run(arguments: &[String], json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut explanations = Vec::with_capacity(arguments.len());
    for argument in arguments {
        explanations.push(explain(argument)?);
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &explanations)?;
        writeln!(out)?;
    } else {
        for (index, explanation) in explanations.iter().enumerate() {
            if index > 0 {
                writeln!(out)?;
            }
            write_text(explanation, out)?;
        }
    }
    Ok(exit::SUCCESS)
}

fn explain(argument: &str) -> anyhow::Result<Explanation> {
    if let Ok(hresult) = argument.parse::<HResult>() {
        let message = match hresult.info() {
            Some(info) => info.message,
            None => {
                "No WUA code has this value; its severity, facility and component \
                 say which part of the system reported it."
            }
        };
        return Ok(Explanation::Code {
            hresult,
            name: hresult.name(),
            unsigned: hresult.to_u32(),
            signed: hresult.to_i32(),
            severity: if hresult.is_success() {
                "success"
            } else {
                "failure"
            },
            facility: hresult.facility(),
            facility_name: hresult.facility_name(),
            component: hresult.component().map(|component| component.description()),
            message,
        });
    }
    if let Some((table, member, value)) = EnumTable::find_member(argument) {
        return Ok(Explanation::EnumMember {
            enumeration: table.name,
            member,
            value,
        });
    }
    bail!(
        "{argument:?} is neither a result code nor an enum member: give a hex value \
         (0x80240020), a decimal value (2149842976 or -2145124320), a name \
         (WU_E_NO_INTERACTIVE_USER) or a member (orcFailed)"
    )
}

fn write_text(explanation: &Explanation, out: &mut dyn Write) -> io::Result<()> {
    match explanation {
        Explanation::Code {
            hresult,
            name,
            unsigned,
            signed,
            severity,
            facility,
            facility_name,
            component,
            message,
        } => {
            writeln!(out, "{hresult:#} {}", name.unwrap_or("(not a WUA code)"))?;
            writeln!(out, "  decimal:   {unsigned} (signed {signed})")?;
            writeln!(out, "  severity:  {severity}")?;
            match facility_name {
                Some(name) => writeln!(out, "  facility:  {facility:#x} ({name})"),
                None => writeln!(out, "  facility:  {facility:#x}"),
            }?;
            if let Some(component) = component {
                writeln!(out, "  component: {component}")?;
            }
            writeln!(out, "  {message}")
        }
        Explanation::EnumMember {
            enumeration,
            member,
            value,
        } => writeln!(out, "{enumeration}.{member} = {value}"),
    }
}
