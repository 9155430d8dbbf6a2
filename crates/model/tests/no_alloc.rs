//! Evaluating compiled criteria allocates nothing: `allocation-counter`'s
//! allocator watches `Criteria::matches_update` over updates that exercise
//! every kind of term.

use openwua_model::criteria::Criteria;
use openwua_model::update::{Update, UpdateState};
use uuid::Uuid;

const CATEGORY: Uuid = Uuid::from_u128(0x0fa1201d_4330_4fa8_8ae9_b877473b6441);
const ID: Uuid = Uuid::from_u128(0x12345678_9abc_def0_1234_56789abcdef0);

fn update(index: u32) -> Update {
    serde_json::from_value(serde_json::json!({
        "identity": {"updateId": if index.is_multiple_of(2) { ID } else { Uuid::from_u128(index.into()) },
                     "revisionNumber": index % 3},
        "title": format!("Update {index}"),
        "type": if index.is_multiple_of(5) { "Driver" } else { "Software" },
        "deploymentAction": if index.is_multiple_of(7) { "Uninstallation" } else { "Installation" },
        "categories": [{"id": if index.is_multiple_of(3) { CATEGORY } else { Uuid::nil() },
                        "name": "Security Updates", "type": "UpdateClassification"}],
    }))
    .unwrap()
}

#[test]
fn evaluation_does_not_allocate() {
    let criteria = Criteria::parse(
        "IsInstalled=0 and Type='Software' and IsHidden=0 \
         or UpdateID='12345678-9abc-def0-1234-56789abcdef0' and RevisionNumber=1 \
         or UpdateID!='12345678-9abc-def0-1234-56789abcdef0' and Type!='Driver' \
         or CategoryIDs contains '0fa1201d-4330-4fa8-8ae9-b877473b6441' and DeploymentAction=* \
         or DeploymentAction='Uninstallation' and IsPresent=1",
    )
    .unwrap();
    let updates: Vec<(Update, UpdateState)> = (0..64u32)
        .map(|index| {
            let state = UpdateState {
                is_installed: index % 2 == 1,
                is_hidden: index % 4 == 3,
                is_present: index.is_multiple_of(3),
                ..UpdateState::default()
            };
            (update(index), state)
        })
        .collect();
    let mut matched = 0;
    let allocations = allocation_counter::measure(|| {
        matched = updates
            .iter()
            .filter(|(update, state)| criteria.matches_update(update, state))
            .count();
    });
    assert_eq!(allocations.count_total, 0, "evaluation allocated");
    assert!(
        matched > 0 && matched < updates.len(),
        "both outcomes occur: {matched}"
    );
}
