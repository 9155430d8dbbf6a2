//! An interactive `Install` or `Uninstall`: the job's progress, its
//! installers' questions and terminal output go to the connection that
//! asked for it, and only to it; its answers and keystrokes come back on
//! the same connection as `oneway` calls (`Answer`, `TerminalInput`,
//! `ResizeTerminal`) while the replies stream. Any other call waits for
//! the stream to end. When the client goes, the [`PromptStream`] is
//! dropped: waiting questions abort, and the installer's terminal hangs up.

use std::collections::HashMap;
use std::sync::Arc;

use openwua_model::operation::JobState;
use openwua_model::prompt::{PromptEvent, Question};
use openwua_varlink::parameters::{AnswerParameters, ResizeParameters, TerminalInputParameters};
use serde_json::json;

use super::connection::{Inbox, Incoming};
use super::methods::ReplySink;
use super::protocol::{Call, Reply};
use crate::jobs::Job;
use openwua_installer::prompts::PromptStream;

/// An answer's length, in bytes: more than any question needs.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Streams `job` with its prompts until it completes; returns its last
/// reply, or `None` when the client left (the job goes on without it).
pub async fn follow(
    job: Arc<Job>,
    mut prompts: PromptStream,
    inbox: &mut Inbox,
    sink: &mut impl ReplySink,
) -> std::io::Result<Option<Reply>> {
    let mut changes = job.subscribe();
    // Questions asked and not yet answered, to ask again after a refused
    // answer (a oneway call has no reply to carry the refusal).
    let mut asked: HashMap<String, Question> = HashMap::new();
    let mut prompting = true;
    loop {
        let info = changes.borrow_and_update().clone();
        if info.state == JobState::Completed {
            return Ok(Some(Reply::of(&json!({ "job": info }))));
        }
        send(sink, json!({ "job": info })).await?;
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(Some(Reply::of(&json!({ "job": job.info() }))));
                    }
                    break;
                }
                event = prompts.next(), if prompting => match event {
                    Some(event) => send(sink, event_reply(event, &mut asked)).await?,
                    // The job's prompter is gone: no more questions.
                    None => prompting = false,
                },
                incoming = inbox.receive(), if inbox.may_receive() => match incoming {
                    Incoming::Call(call) if is_prompt_call(&call) => {
                        if let Some(refused) = take_reply(&call, &prompts, &mut asked) {
                            send(sink, refused).await?;
                        }
                    }
                    Incoming::Call(call) => inbox.put_back(Incoming::Call(call)),
                    // Dropping `prompts` tells the installers nobody answers.
                    Incoming::Closed => return Ok(None),
                    refused @ Incoming::Refused(_) => {
                        inbox.put_back(refused);
                        return Ok(None);
                    }
                },
            }
        }
    }
}

async fn send(sink: &mut impl ReplySink, value: serde_json::Value) -> std::io::Result<()> {
    sink.send(Reply::Parameters {
        json: value.to_string(),
        continues: true,
    })
    .await
}

/// The streamed reply for one prompt event.
fn event_reply(event: PromptEvent, asked: &mut HashMap<String, Question>) -> serde_json::Value {
    match event {
        PromptEvent::Question(question) => {
            let reply = json!({ "question": question });
            asked.insert(question.id.clone(), question);
            reply
        }
        PromptEvent::TerminalOutput(bytes) => json!({ "terminalOutput": hex::encode(bytes) }),
        PromptEvent::TerminalClosed => json!({ "terminalClosed": true }),
    }
}

fn is_prompt_call(call: &Call) -> bool {
    call.oneway
        && matches!(
            call.method.as_str(),
            "org.openwua.Agent.Answer"
                | "org.openwua.Agent.TerminalInput"
                | "org.openwua.Agent.ResizeTerminal"
        )
}

/// Hands an answer or keystrokes (a call [`is_prompt_call`] accepts) to the
/// installers; returns the reply to stream when an answer was refused (the
/// question, asked again, with the reason).
fn take_reply(
    call: &Call,
    prompts: &PromptStream,
    asked: &mut HashMap<String, Question>,
) -> Option<serde_json::Value> {
    let raw = call.parameters.as_deref().map_or("{}", |raw| raw.get());
    match call.method.as_str() {
        "org.openwua.Agent.Answer" => {
            let Ok(AnswerParameters {
                question_id,
                answer,
            }) = serde_json::from_str(raw)
            else {
                tracing::debug!("an Answer with unusable parameters was ignored");
                return None;
            };
            let checked = match answer.as_deref() {
                Some(text) => crate::policy::check_length("answer", text, MAX_ANSWER_BYTES),
                None => Ok(()),
            };
            match checked.and_then(|()| prompts.answer(&question_id, answer).map_err(Into::into)) {
                Ok(()) => {
                    asked.remove(&question_id);
                    None
                }
                Err(error) => asked
                    .get(&question_id)
                    .map(|question| json!({ "question": question, "answerRefused": error.detail })),
            }
        }
        "org.openwua.Agent.TerminalInput" => {
            match serde_json::from_str::<TerminalInputParameters>(raw) {
                Ok(input) => prompts.terminal_input(input.data),
                Err(error) => tracing::debug!("a TerminalInput was ignored: {error}"),
            }
            None
        }
        _ => {
            match serde_json::from_str::<ResizeParameters>(raw) {
                Ok(size) => prompts.terminal_resize(size.rows, size.columns),
                Err(error) => tracing::debug!("a ResizeTerminal was ignored: {error}"),
            }
            None
        }
    }
}
