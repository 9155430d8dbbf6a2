//! `wua explain`: what a result code (or an enum member) means.

use anyhow::bail;
use openwua_model::enums::EnumTable;
use openwua_model::hresult::{FACILITY_WINDOWSUPDATE, HResult};
use serde::Serialize;

use crate::exit;

/// One explained argument, as JSON prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
enum Explanation {
    /// A result code, known or not.
    Code {
        hresult: HResult,
        name: Option<&'static str>,
        unsigned: u32,
        signed: i32,
        severity: &'static str,
        facility: u16,
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

pub fn run(arguments: &[String], json: bool) -> anyhow::Result<u8> {
    let mut explanations = Vec::with_capacity(arguments.len());
    for argument in arguments {
        explanations.push(explain(argument)?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&explanations)?);
    } else {
        for (index, explanation) in explanations.iter().enumerate() {
            if index > 0 {
                println!();
            }
            print_text(explanation);
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

fn print_text(explanation: &Explanation) {
    match explanation {
        Explanation::Code {
            hresult,
            name,
            unsigned,
            signed,
            severity,
            facility,
            component,
            message,
        } => {
            println!("{hresult:#} {}", name.unwrap_or("(not a WUA code)"));
            println!("  decimal:   {unsigned} (signed {signed})");
            println!("  severity:  {severity}");
            let facility_name = if *facility == FACILITY_WINDOWSUPDATE {
                " (Windows Update)"
            } else {
                ""
            };
            println!("  facility:  {facility:#x}{facility_name}");
            if let Some(component) = component {
                println!("  component: {component}");
            }
            println!("  {message}");
        }
        Explanation::EnumMember {
            enumeration,
            member,
            value,
        } => println!("{enumeration}.{member} = {value}"),
    }
}
