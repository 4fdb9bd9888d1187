"""Rendering the iam/ templates: structural substitution, clear errors, well-formed documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from featureshare.bootstrap.templates import (
    DocumentKind,
    load_template,
    partition_of,
    placeholders,
    policy_documents,
    render,
    render_template,
    template_names,
)
from featureshare.config import Topology
from featureshare.errors import ConfigError, ValidationError
from featureshare.iampolicy import policy_problems

CENTRAL = "111111111111"
SEARCH = "222222222222"
REVIEWS = "333333333333"
CENTRAL_KEY = f"arn:aws:kms:eu-west-1:{CENTRAL}:key/11111111-2222-3333-4444-555555555555"


def topology(**central: Any) -> Topology:
    return Topology.from_dict(_topology_data(**central))


def _topology_data(**central: Any) -> dict[str, Any]:
    return {
        "region": "eu-west-1",
        "central": {"account_id": CENTRAL, "access_role_arn": f"arn:aws:iam::{CENTRAL}:role/FeatureShareAccess",
                    "offline_bucket": "central-offline", "kms_key": CENTRAL_KEY, **central},
        "consumers": [
            {"name": "search", "account_id": SEARCH, "team": "search", "training_bucket": "search-training",
             "execution_role_arns": [f"arn:aws:iam::{SEARCH}:role/SearchExec"]},
            {"name": "reviews", "account_id": REVIEWS, "team": "reviews", "training_bucket": "reviews-training",
             "execution_role_arns": [f"arn:aws:iam::{REVIEWS}:role/ReviewsExec"]},
        ],
    }


@pytest.mark.parametrize(("region", "partition"), [("eu-west-1", "aws"), ("cn-northwest-1", "aws-cn"),
                                                   ("us-gov-west-1", "aws-us-gov"), ("us-iso-east-1", "aws-iso")])
def test_arns_are_rendered_in_the_region_s_partition(region: str, partition: str) -> None:
    assert partition_of(region) == partition
    docs = policy_documents(Topology.from_dict({**_topology_data(), "region": region}))
    bucket_policy = json.dumps(docs["offline-bucket-policy"].document)
    assert f"arn:{partition}:s3:::central-offline" in bucket_policy
    assert partition == "aws" or "arn:aws:s3:::" not in bucket_policy


def test_every_template_is_a_json_policy_document() -> None:
    names = template_names()
    assert len(names) >= 12
    for name in names:
        document = load_template(name)
        assert document["Version"] == "2012-10-17", name
        assert document["Statement"], name


def test_rendering_keeps_iam_policy_variables_intact() -> None:
    doc = render("central-access-role-trust-tag-session", sid_suffix="Search",
                 consumer_account_root=f"arn:aws:iam::{SEARCH}:root",
                 execution_role_arns=[f"arn:aws:iam::{SEARCH}:role/SearchExec"], team="search")
    condition = doc["Statement"][0]["Condition"]["StringEquals"]
    assert condition == {"aws:RequestTag/team": "${aws:PrincipalTag/team}", "aws:PrincipalTag/team": "search"}
    assert doc["Statement"][0]["Sid"] == "TagSessionWithOwnTeamOnlySearch"


def test_every_policy_variable_of_a_template_survives_rendering() -> None:
    template = load_template("central-access-role-permissions")
    docs = policy_documents(topology())
    before = json.dumps(template).count("${aws:PrincipalTag/team}")
    after = docs["central-access-role-permissions"].to_json().count("${aws:PrincipalTag/team}")
    assert before == after > 0


def test_missing_placeholder_value_names_the_template_and_the_placeholder() -> None:
    with pytest.raises(ValidationError, match=r"offline-store-role-trust: missing value for placeholder "
                                              r"\{\{central_account\}\}") as info:
        render("offline-store-role-trust", partition="aws", region="eu-west-1")
    assert info.value.field == "central_account"


def test_unknown_placeholder_value_is_an_error() -> None:
    with pytest.raises(ValidationError, match="unknown placeholder 'acount_id'"):
        render("offline-store-role-trust", partition="aws", region="eu-west-1", central_account=CENTRAL,
               acount_id=CENTRAL)


def test_list_value_is_spliced_into_an_enclosing_list_and_replaces_a_lone_string() -> None:
    template = {"Version": "2012-10-17", "Statement": [{"Resource": ["a", "{{more}}"], "Principal": "{{who}}"}]}
    doc = render_template(template, {"more": ["b", "c"], "who": ["x", "y"]})
    assert doc["Statement"][0] == {"Resource": ["a", "b", "c"], "Principal": ["x", "y"]}


def test_list_value_embedded_in_text_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"embedded in 'arn:\{\{ids\}\}' and needs a string"):
        render_template({"Statement": [{"Resource": "arn:{{ids}}"}]}, {"ids": ["1", "2"]})


def test_none_drops_the_entry_and_containers_it_leaves_empty() -> None:
    template = {"Condition": {"ArnEquals": {"aws:PrincipalArn": "r"}, "StringEquals": {"sts:ExternalId": "{{x}}"}}}
    assert render_template(template, {"x": None}) == {"Condition": {"ArnEquals": {"aws:PrincipalArn": "r"}}}
    assert render_template(template, {"x": "e"})["Condition"]["StringEquals"] == {"sts:ExternalId": "e"}


@pytest.mark.parametrize("value, message", [([], "empty list"), (3, "must be a string"), ({"a": "b"}, "must be")])
def test_values_of_the_wrong_type_are_rejected(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        render_template({"Resource": "{{v}}"}, {"v": value})


def test_placeholder_values_are_not_rescanned_for_markers() -> None:
    assert render_template({"Sid": "{{a}}"}, {"a": "{{b}}"}) == {"Sid": "{{b}}"}


def test_rendering_does_not_modify_the_template() -> None:
    template = {"Statement": [{"Resource": ["{{r}}"]}]}
    render_template(template, {"r": ["x", "y"]})
    assert template == {"Statement": [{"Resource": ["{{r}}"]}]}


def test_placeholders_lists_what_a_template_uses() -> None:
    assert placeholders("offline-store-role-trust") == {"partition", "region", "central_account"}


def test_unknown_template_name_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"no IAM template 'nope\.json'.*offline-bucket-policy"):
        load_template("nope")


def test_a_template_directory_can_be_given(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"Version": "2012-10-17", "Statement": [{"Sid": "{{s}}"}]}')
    assert render("x", template_dir=tmp_path, s="Hello")["Statement"][0]["Sid"] == "Hello"


def test_every_rendered_document_has_a_valid_policy_shape() -> None:
    docs = policy_documents(topology(external_id="ext-123"))
    for doc in docs.values():
        assert policy_problems(doc.document, kind=doc.kind.value) == [], doc.name
        assert "{{" not in doc.to_json(), doc.name
        json.loads(doc.to_json())


def test_documents_cover_central_and_every_consumer() -> None:
    docs = policy_documents(topology())
    assert {d.account for d in docs.values()} == {CENTRAL, SEARCH, REVIEWS}
    kinds = {d.kind for d in docs.values()}
    assert kinds == {DocumentKind.TRUST, DocumentKind.IDENTITY, DocumentKind.RESOURCE, DocumentKind.KEY}
    assert "consumer-execution-role-policy[search]" in docs
    assert docs["consumer-training-bucket-policy[reviews]"].attached_to == ("arn:aws:s3:::reviews-training",)
    assert not any(name.startswith("training-key-policy") for name in docs)


def test_external_id_condition_appears_only_when_configured() -> None:
    without = policy_documents(topology())["central-access-role-trust"].document["Statement"][0]
    with_id = policy_documents(topology(external_id="ext-123"))["central-access-role-trust"].document
    assert "StringEquals" not in without["Condition"]
    assert with_id["Statement"][0]["Condition"]["StringEquals"] == {"sts:ExternalId": "ext-123"}


def test_consumer_key_adds_its_key_policy_and_key_grants() -> None:
    key = f"arn:aws:kms:eu-west-1:{REVIEWS}:key/aaaaaaaa-2222-3333-4444-555555555555"
    docs = policy_documents(topology(), resolved_keys={"reviews": key})
    assert docs["training-key-policy[reviews]"].attached_to == (key,)
    assert docs["central-access-role-consumer-keys"].document["Statement"][0]["Resource"] == [key]
    assert "training-key-policy[search]" not in docs


def test_key_alias_without_a_resolved_key_arn_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"central\.kms_key is alias/fs.*resolved_keys"):
        policy_documents(topology(kms_key="alias/fs"))
    resolved = policy_documents(topology(kms_key="alias/fs"), resolved_keys={"central": CENTRAL_KEY})
    assert resolved["offline-key-policy"].attached_to == (CENTRAL_KEY,)


def test_offline_store_role_defaults_to_a_named_role_in_the_central_account() -> None:
    docs = policy_documents(topology())
    assert docs["offline-store-role-trust"].attached_to == (
        f"arn:aws:iam::{CENTRAL}:role/featureshare-offline-store",)


def test_allowed_tag_keys_must_include_team() -> None:
    with pytest.raises(ValidationError, match="must include 'team'"):
        policy_documents(topology(), allowed_tag_keys=("shared",))


def test_a_broken_template_is_caught_by_the_shape_check(tmp_path: Path) -> None:
    for name in template_names():
        text = load_template(name)
        if name == "offline-bucket-policy":
            del text["Statement"][1]["Principal"]
        (tmp_path / f"{name}.json").write_text(json.dumps(text))
    with pytest.raises(ValidationError, match=r"offline-bucket-policy: Statement\[1\]: needs a Principal"):
        policy_documents(topology(), template_dir=tmp_path)


def many_consumers(count: int) -> Topology:
    return Topology.from_dict({
        "region": "eu-west-1",
        "central": {"account_id": CENTRAL, "access_role_arn": f"arn:aws:iam::{CENTRAL}:role/FeatureShareAccess",
                    "offline_bucket": "central-offline", "kms_key": CENTRAL_KEY},
        "consumers": [{"name": f"team{i}", "account_id": str(200000000000 + i), "team": f"team{i}",
                       "training_bucket": f"team{i}-training",
                       "execution_role_arns": [f"arn:aws:iam::{200000000000 + i}:role/Exec"]} for i in range(count)],
    })


def test_trust_policy_size_grows_per_consumer_only_when_teams_are_bound() -> None:
    def trust_size(count: int, bind: bool) -> int:
        docs = policy_documents(many_consumers(count), bind_teams_in_trust=bind)
        return docs["central-access-role-trust"].size

    bound_growth = trust_size(3, True) - trust_size(2, True)
    compact_growth = trust_size(3, False) - trust_size(2, False)
    assert bound_growth > 2 * compact_growth
    assert trust_size(2, True) <= 2048  # the default IAM trust policy quota
    compact = policy_documents(many_consumers(2), bind_teams_in_trust=False)["central-access-role-trust"]
    tag_statement = compact.document["Statement"][-1]
    assert tag_statement["Condition"]["StringEquals"] == {"aws:RequestTag/team": "${aws:PrincipalTag/team}"}
