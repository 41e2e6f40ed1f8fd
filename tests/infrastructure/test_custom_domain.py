"""The optional custom domain: TLS 1.2+, mutual TLS only with a truststore, mapped to the API's stage."""

from __future__ import annotations

from pathlib import Path

from stepless.local.template import load_template

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")


def test_custom_domain_is_optional_and_mtls_needs_a_truststore() -> None:
    res = TEMPLATE["Resources"]
    domain = res["ApiDomain"]
    assert domain["Condition"] == "HasDomain" and res["ApiDomainMapping"]["Condition"] == "HasDomain"
    config = domain["Properties"]["DomainNameConfigurations"][0]
    assert config["SecurityPolicy"] == "TLS_1_2" and config["EndpointType"] == "REGIONAL"
    mtls = domain["Properties"]["MutualTlsAuthentication"]["Fn::If"]
    assert mtls[0] == "HasMtls" and mtls[2] == {"Ref": "AWS::NoValue"}
    assert mtls[1]["TruststoreUri"] == {"Ref": "TruststoreUri"}
    assert TEMPLATE["Conditions"]["HasMtls"]["Fn::And"][0] == {"Condition": "HasDomain"}
    mapping = res["ApiDomainMapping"]["Properties"]
    assert mapping["ApiId"] == {"Ref": "CaApi"} and mapping["Stage"] == "$default"
    for name in ("DomainName", "DomainCertificateArn", "TruststoreUri"):
        assert TEMPLATE["Parameters"][name]["Default"] == ""


def test_rules_refuse_incomplete_custom_domain_parameters() -> None:
    """Issue 10 item 16: DomainName without its certificate, or mTLS without the domain or the ownership
    certificate, is refused by CloudFormation before anything is created."""
    rules = TEMPLATE["Rules"]
    unset = {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]}
    domain = rules["CustomDomainNeedsItsCertificate"]
    assert domain["RuleCondition"] == unset
    assert [a["Assert"] for a in domain["Assertions"]] == [
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainCertificateArn"}, ""]}]}]
    mtls = rules["MutualTlsNeedsTheDomainAndAnOwnershipCertificate"]
    assert mtls["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "TruststoreUri"}, ""]}]}
    required = [a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in mtls["Assertions"]]
    assert required == ["DomainName", "OwnershipVerificationCertificateArn"]
    for rule in rules.values():
        assert all(len(a["AssertDescription"]) > 30 for a in rule["Assertions"])
