# ruff: noqa: E501 - template lines are the answer's lines; wrapping them would change it
"""What the demo contains. Edited here, loaded by ``jarvis seed demo``.

Every demo agent has a real kind and configuration, so that offline (the ``rules`` LLM
provider) these commands run through the six layers and answer:

* "Review the new submission from Acme Logistics" (underwriter), or a pasted broker
  e-mail: the Intent Router decides ``submission_review``; Rachel's assistant extracts
  the key facts (insured, TIV, year built, construction, sprinklers, effective date),
  the submission workflow the rest of the record, the risk workflow applies the
  ``property-risk-appetite`` rule table, the COPE extractor the protection details; the
  Answer Composer tells Rachel what was found and what is missing, and the Broker
  Email Response Agent drafts the e-mail to the broker, which waits for her approval.
* "Laptop won't connect to VPN, urgent" (IT support): ``it_incident``; impact (Incident
  Response Coordinator), urgency (John's assistant) and category are classified, the
  ``itil-priority`` table sets the priority, ``it-resolver-groups`` the resolver group;
  the Answer Composer answers with the ticket summary and the Service Desk Ticket
  Connector writes the notice to the reporter.
* "Which agents are waiting for approval?" (any persona): ``agent_status``; the Agent
  Registry Inspector lists agents pending governance approval and executions awaiting a
  human decision; the Answer Composer renders them.

Outputs are named in templates and rule tables by the agent's handle (its name in
lower case, non-alphanumerics as ``_``: ``jarvis.agents.kinds.base.agent_handle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jarvis.agents.schemas import AgentCreate, AgentMetrics
from jarvis.config.rules import RuleSetIn, TemplateIn
from jarvis.core.layers import Layer
from jarvis.personas.schemas import ColorScheme, PersonaRegister
from jarvis.personas.service import ADMIN_PERSONA

PERSONAS: tuple[PersonaRegister, ...] = (
    ADMIN_PERSONA,
    PersonaRegister(
        key="underwriter",
        display_name="Commercial Property Underwriter",
        person_name="Rachel Thompson",
        description=(
            "Senior commercial property underwriter: broker submissions, COPE data, risk "
            "assessment, quotes and referrals."
        ),
        color_scheme=ColorScheme(
            primary="#059669",
            secondary="#065f46",
            accent="#34d399",
            background="#022c22",
            glassmorphism="rgba(2, 44, 34, 0.7)",
        ),
    ),
    PersonaRegister(
        key="it_support",
        display_name="IT Support Engineer",
        person_name="John Stevens",
        description=(
            "Service desk lead: incident triage by ITIL priority, access requests, outages "
            "and security reports."
        ),
        color_scheme=ColorScheme(
            primary="#7c3aed",
            secondary="#4c1d95",
            accent="#a78bfa",
            background="#1e1b4b",
            glassmorphism="rgba(30, 27, 75, 0.7)",
        ),
    ),
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    persona: str
    first_name: str
    last_name: str
    job_title: str
    department: str


# Granted to each demo persona when the seed registers it (admin holds every permission).
PERSONA_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "underwriter": ("executions:create", "executions:approve"),
    "it_support": ("executions:create", "executions:approve", "agents:write"),
}

USERS: tuple[DemoUser, ...] = (
    DemoUser(
        "rachel.thompson@jarvis.local",
        "underwriter",
        "Rachel",
        "Thompson",
        "Senior Commercial Property Underwriter",
        "Commercial Lines Underwriting",
    ),
    DemoUser(
        "john.stevens@jarvis.local",
        "it_support",
        "John",
        "Stevens",
        "IT Service Desk Lead",
        "Information Technology",
    ),
)

# The demo users' first commands (``jarvis seed demo --with-history`` runs them): what a
# fresh ``make run`` shows on the dashboards. Acme's review waits for Rachel's approval.
HISTORY: tuple[tuple[str, str], ...] = (
    ("john.stevens@jarvis.local", "Laptop won't connect to VPN, urgent"),
    (
        "john.stevens@jarvis.local",
        "Nobody on the third floor can print since this morning; the whole claims team is affected",
    ),
    ("rachel.thompson@jarvis.local", "Which agents are waiting for approval?"),
    ("rachel.thompson@jarvis.local", "Review the new submission from Acme Logistics"),
)

# --- intents ---------------------------------------------------------------------------

SUBMISSION_REVIEW = "submission_review"
IT_INCIDENT = "it_incident"
CLAIM_INTAKE = "claim_intake"
AGENT_STATUS = "agent_status"
GENERAL_QUESTION = "general_question"

# --- configuration helpers -------------------------------------------------------------

Config = dict[str, Any]


def _label(
    name: str,
    description: str,
    keywords: str = "",
    patterns: tuple[str, ...] = (),
    weight: float = 1.0,
) -> Config:
    """One classifier label: ``keywords`` is "word|phrase|..." (whole words, any case) and
    ``patterns`` RE2 expressions, both for the offline rules provider."""
    words = [keyword for keyword in keywords.split("|") if keyword]
    label: Config = {"name": name, "description": description, "keywords": words}
    if patterns:
        label["patterns"] = list(patterns)
    if weight != 1.0:
        label["weight"] = weight
    return label


def _classifier(output_key: str, labels: list[Config], **extra: Any) -> Config:
    return {"outputKey": output_key, "labels": labels, **extra}


def _field(
    name: str,
    description: str,
    patterns: tuple[str, ...],
    *,
    type_: str = "string",
    required: bool = False,
) -> Config:
    """One extractor field; its RE2 patterns are tried in order (first capture group)."""
    field: Config = {"name": name, "description": description, "patterns": list(patterns)}
    if type_ != "string":
        field["type"] = type_
    if required:
        field["required"] = True
    return field


# Money as brokers write it: "$4.5M", "750k", "$1,200,000", "~6.45M".
_MONEY = r"([~≈]?[ \t]*\$?[ \t]*\d[\d,]*(?:\.\d+)?(?:[ \t]*(?:[kKmM]{1,2}|million)\b)?)"
_US_DATE = r"(\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2}|[A-Z][a-z]+\.?[ \t]+\d{1,2},?[ \t]+\d{4})"

# --- Experience ------------------------------------------------------------------------

CARRIER_BRAND: Config = {"ruleSet": "carrier-brand"}

UNDERWRITING_WORKBENCH = _classifier(
    "panel",
    [
        _label(
            "submission_queue",
            "New business submissions and broker e-mails waiting for review.",
            "submission|new submission|broker|intake|new business",
        ),
        _label(
            "referrals",
            "Risks referred above the underwriter's authority.",
            "referral|refer|referred|authority",
        ),
        _label(
            "quotes",
            "Quotes, indications and binders in progress.",
            "quote|indication|bind|bound",
        ),
        _label(
            "portfolio",
            "The book: accumulations, exposures and renewals.",
            "portfolio|accumulation|exposure|renewals",
        ),
    ],
    defaultLabel="submission_queue",
)

SERVICE_DESK_PORTAL = _classifier(
    "view",
    [
        _label(
            "major_incident_board",
            "Outages hitting many users at once.",
            "everyone|all offices|nobody|no one|outage|all users",
        ),
        _label(
            "access_requests",
            "New starters, leavers and permission changes.",
            "new starter|access to|set up his login|set up her login|permissions",
        ),
        _label(
            "incident_queue",
            "Everything else that is broken.",
            "not working|won't|error|crash|broken",
        ),
    ],
    defaultLabel="incident_queue",
)

# --- Meta Brain ------------------------------------------------------------------------

INTENT_ROUTER = _classifier(
    "intent",
    [
        _label(
            SUBMISSION_REVIEW,
            "Review a commercial property submission or a broker's submission e-mail: "
            "insured, values, COPE data, effective date.",
            (
                "submission|new submission|named insured|broker|tiv|total insured value|cope|"
                "sprinklered|year built|yr blt|special form|bpp|indication|quote|bound|contents|underwriting|"
                "flood zone|ppc|schedule of values"
            ),
        ),
        _label(
            IT_INCIDENT,
            "An IT problem reported to the service desk: devices, network and VPN, "
            "accounts and passwords, applications, e-mail delivery, security alerts.",
            (
                "vpn|laptop|desktop|wifi|wi-fi|network|internet|printer|monitor|password|locked out|"
                "login|sign-in|crash|crashes|crashing|error|help desk|helpdesk|service desk|"
                "won't connect|can't connect|cannot connect|not working|outage|send or receive|"
                "webmail|desk phone|desk phones|new starter"
            ),
        ),
        _label(
            CLAIM_INTAKE,
            "A first notice of loss or a claim on an existing policy.",
            (
                "claim|fnol|first notice of loss|notice of loss|date of loss|report a loss|adjuster|"
                "damage"
            ),
        ),
        _label(
            AGENT_STATUS,
            "A question about the platform's agents: which await governance approval or "
            "review, and which executions wait for a human decision.",
            (
                "agents|which agents|agent status|waiting for approval|awaiting approval|"
                "pending approval|waiting on approval|need approval|governance|under review"
            ),
        ),
        _label(
            GENERAL_QUESTION,
            "Anything else: a general question or a request no other intent covers.",
            "help|what can you do|how do i",
        ),
    ],
    minConfidence=0.3,
    defaultLabel=GENERAL_QUESTION,
)

META_BRAIN_ORCHESTRATOR = _classifier(
    "commandForm",
    [
        _label(
            "pasted_email",
            "The command is an e-mail pasted in (headers, greeting, sign-off).",
            patterns=(
                r"(?im)^(?:from|to|subject|sent|date|cc):[ \t]",
                r"(?im)^(?:hi|hello|dear|good morning|good afternoon)\b",
                r"(?im)^(?:thanks|thank you|regards|best regards|kind regards|best|cheers),?[ \t]*$",
            ),
        ),
        _label("question", "The command asks something.", patterns=(r"\?[ \t]*$",)),
        _label(
            "instruction",
            "The command tells JARVIS what to do.",
            patterns=(r"(?i)^[ \t]*(?:review|show|list|create|run|check|triage|draft|find)\b",),
        ),
    ],
    defaultLabel="instruction",
)

UNDERWRITING_WORKFLOW_COORDINATOR = _classifier(
    "occupancy",
    [
        _label(
            "light",
            "NFPA light hazard: offices, churches, medical and dental offices, hotels.",
            "office|offices|dental|medical|clinic|church|veterinary|hotel",
        ),
        _label(
            "ordinary_1",
            "Ordinary hazard group 1: restaurants, bakeries, parking structures.",
            "restaurant|bakery|cafe|taproom|parking garage",
        ),
        _label(
            "ordinary_2",
            "Ordinary hazard group 2: retail, warehouses, light manufacturing, repair shops.",
            (
                "warehouse|retail|distributor|logistics|self storage|light manufacturing|assembly|"
                "machining|repair shop"
            ),
        ),
        _label(
            "extra_1",
            "Extra hazard group 1: woodworking, printing with flammable inks.",
            "woodworking|printing|print shop|flexo|solvent-based inks",
            weight=1.5,
        ),
        _label(
            "extra_2",
            "Extra hazard group 2: flammable liquids, plastics processing, extraction.",
            "plastics|thermoforming|flammable liquids|hydrocarbon|extraction",
            weight=2.0,
        ),
        _label(
            "out_of_appetite",
            "Occupancies the carrier does not write: fireworks, explosives, cannabis.",
            "fireworks|explosives|cannabis|marijuana|dispensary",
            weight=5.0,
        ),
    ],
)

INCIDENT_RESPONSE_COORDINATOR = _classifier(
    "impact",
    [
        _label(
            "high",
            "The whole business or a critical service is affected.",
            (
                "all offices|all three offices|across all|whole company|entire company|company-wide|"
                "all users|no one|nobody|affecting everyone|everyone there"
            ),
        ),
        _label(
            "medium",
            "A department or several users are affected.",
            "everyone in|department|whole team|our team|several users|multiple users|of us",
        ),
        _label(
            "low",
            "One or two users are affected.",
            "my laptop|my account|only me|just me",
        ),
    ],
    defaultLabel="low",
)

# --- Role ------------------------------------------------------------------------------

RACHEL_ASSISTANT: Config = {
    "fields": [
        _field(
            "insured_name",
            "The named insured's legal name as written (entity suffix kept).",
            (
                r"(?im)^[ \t]*named insured\b[ \t.:]*([^\n]+?)[ \t]*$",
                r"(?i:submission from|submission for|submitting|indication on|indication for"
                r"|quote for|quote on)[ \t]+([A-Z][\w&'.-]*(?:[ \t]+[A-Z&][\w&'.-]*)*)",
                # A company name with its entity suffix, at a line start or after "- " / ": ".
                r"(?m)(?:^|[-:][ \t]+)[ \t]*([A-Z][\w&'.-]*(?:[ \t]+[A-Z&][\w&'.-]*)*,?[ \t]+"
                r"(?:Inc\.|LLC|L\.L\.C\.|Co\.|Corp\.|P\.A\.|Ltd\.?))",
            ),
            required=True,
        ),
        _field(
            "tiv",
            "Total insured value in dollars, as stated.",
            (
                r"(?i)\bTIV\b[ \t.:=-]*" + _MONEY,
                r"(?i)\btotal insured values?\b[ \t.:=-]*" + _MONEY,
            ),
            type_="number",
        ),
        _field(
            "year_built",
            "Original construction year.",
            (
                r"(?i)\b(?:year|yr\.?)[ \t]*(?:built|blt)\.?[ \t.:]*(\d{4})\b",
                r"(?i)\bbuilt[ \t:]*(?:in[ \t]+)?(\d{4})\b",
            ),
            type_="integer",
            required=True,
        ),
        _field(
            "construction",
            "Construction type (frame, joisted masonry, non-combustible, masonry "
            "non-combustible, fire resistive).",
            (
                r"(?i)\b(modified fire[ -]resistive|fire[ -]resistive|masonry non-?combustible"
                r"|joisted masonry|non-?combustible|frame|MNC|JM)\b",
            ),
            required=True,
        ),
        _field(
            "sprinklers",
            "Sprinkler protection as stated: none, fully, partially or a percentage.",
            (
                r"(?i)\bsprinklers?[ \t]*:[ \t]*(none|no|yes|full|partial)\b",
                r"(?i)\bsprinklered[ \t.:]+(\d{1,3}%|yes|no|none)",
                r"(?i)\b(no)[ \t]+sprinklers?\b",
                r"(?i)\b(fully|partially|partial|non)[ \t-]*sprinklered\b",
                r"(?i)\b(\d{1,3}%)[ \t]+sprinklered\b",
                r"\b(ESFR)\b",
            ),
            required=True,
        ),
        _field(
            "effective_date",
            "Requested policy effective date.",
            (
                r"(?i)\beff(?:ective)?\.?(?:\s+date)?[\s.:]*" + _US_DATE,
                r"(?i)\bbound[ \t]+(?:on[ \t]+)?" + _US_DATE,
            ),
            type_="date",
            required=True,
        ),
        _field(
            "broker_name",
            "Who sent the submission.",
            (r"(?im)^from:[ \t]*\"?([^\"<\n]+?)\"?[ \t]*<",),
        ),
        _field(
            "broker_email",
            "The sender's e-mail address.",
            (r"(?im)^from:[^\n]*?([\w.+-]+@[\w-]+(?:\.[\w-]+)+)",),
        ),
    ]
}

JOHN_ASSISTANT = _classifier(
    "urgency",
    [
        _label(
            "high",
            "Work is stopped, harm is spreading, or a deadline is hours away.",
            (
                "urgent|asap|immediately|right away|no one|nobody|can't work|cannot work|stopped|"
                "outage|is due|deadline|until this is fixed|trying to get into|another country|"
                "compromised|hacked|ransomware|malware|phishing"
            ),
        ),
        _label(
            "medium",
            "Needed within a day or a few days.",
            "today or tomorrow|this week|next monday|joins us|by friday",
        ),
        _label(
            "low",
            "Can wait, or a full workaround exists.",
            "whenever you get a chance|no rush|when you can|not urgent|can work fine|low priority",
        ),
    ],
    defaultLabel="medium",
)

CLAIMS_ADJUSTER_ASSISTANT = _classifier(
    "peril",
    [
        _label("wind", "Windstorm, hail, falling trees.", "wind|windstorm|hail|tree"),
        _label("water", "Water damage and flood.", "water|flood|leak|burst pipe"),
        _label("fire", "Fire and smoke.", "fire|smoke"),
        _label("theft", "Theft and burglary.", "theft|burglary|stolen|break-in"),
        _label("liability", "Injury to third parties.", "injury|injured|slip|fell"),
    ],
)

PERSONA_GENERATION: Config = {
    "fields": [
        _field(
            "requested_role",
            "The role a new persona is asked for (e.g. claims manager).",
            (
                r"(?i)\b(?:persona|workspace)[ \t]+for[ \t]+(?:an?[ \t]+|the[ \t]+)?"
                r"([a-z][a-z ]{2,40}?)[ \t]*(?:[.,?!]|$)",
            ),
        )
    ]
}

# --- Process ---------------------------------------------------------------------------

SUBMISSION_WORKFLOW: Config = {
    "intents": [SUBMISSION_REVIEW],
    "fields": [
        _field(
            "address",
            "Risk address: street, city, state and ZIP.",
            (
                r"(?im)\b(?:location|address)[ \t.]*:?[ \t.]*(\d[^\n]+?)[ \t]*$",
                r"(\d{2,6}[ \t]+[A-Z0-9][^\n,]*,\s*[A-Z][A-Za-z .]+,\s*[A-Z]{2}\s+\d{5})",
            ),
            required=True,
        ),
        _field(
            "building_value",
            "Building limit in dollars.",
            (
                r"(?i)\b(?:building|bldg)(?:[ \t]+value)?[ \t.:]*(\$[ \t]*\d[\d,]*(?:\.\d+)?"
                r"(?:[ \t]*(?:[kKmM]{1,2}|million)\b)?)",
                r"(\$[\d,.]+[ \t]*[kKmM]?)[ \t]+building\b",
            ),
            type_="number",
        ),
        _field(
            "bpp_value",
            "Business personal property (contents) limit in dollars.",
            (r"(?i)\b(?:BPP|contents)[ \t.:]*" + _MONEY,),
            type_="number",
        ),
        _field(
            "bi_value",
            "Business income / extra expense limit in dollars.",
            (r"(?i)\bBI(?:/(?:EE|extra expense))?[ \t.:]*" + _MONEY,),
            type_="number",
        ),
        _field(
            "coverage_form",
            "Coverage form requested.",
            (r"(?i)\b(special form|basic form|broad form|all risk)\b",),
        ),
    ],
}

RISK_ASSESSMENT: Config = {"intents": [SUBMISSION_REVIEW], "ruleSet": "property-risk-appetite"}

CLAIMS_FNOL: Config = {
    "intents": [CLAIM_INTAKE],
    "fields": [
        _field(
            "policy_number",
            "The policy the loss is reported under.",
            (r"\b([A-Z]{2,4}-[A-Z]{2,4}-\d{4}-\d{3,8})\b",),
            required=True,
        ),
        _field(
            "date_of_loss",
            "When the loss happened.",
            (r"(?i)\bdate of loss[ \t:]*" + _US_DATE, r"(?i)\bon[ \t]+" + _US_DATE),
            type_="date",
            required=True,
        ),
        _field(
            "loss_location",
            "Where the loss happened.",
            (r"(?i)\blocation[ \t]*:[ \t]*([^\n]+?)[ \t]*$",),
        ),
        _field("contact_phone", "Who to call back.", (r"\b(\d{3}-\d{4})\b",)),
    ],
}

IT_TRIAGE: Config = {"intents": [IT_INCIDENT], "ruleSet": "itil-priority"}

INCIDENT_CATEGORY = _classifier(
    "category",
    [
        _label(
            "network",
            "Connectivity, VPN, Wi-Fi, telephony, file shares and mapped drives.",
            (
                "vpn|wifi|wi-fi|wireless|network|internet|connect|won't connect|can't connect|"
                "mapped drive|file share|desk phone|desk phones|calls|choppy"
            ),
        ),
        _label(
            "email",
            "Mail delivery, mailboxes, mobile mail and calendar sync.",
            "e-mail|email|mail app|mailbox|webmail|outlook|send or receive",
        ),
        _label(
            "access",
            "Accounts, passwords and permissions.",
            "password|locked out|login|log in|account|permissions|access to|new starter",
        ),
        _label(
            "security",
            "Malware, ransomware, phishing and suspicious sign-ins.",
            (
                "phishing|malware|ransomware|virus|suspicious|hacked|compromised|trying to get into|"
                "didn't make|didn't start|another country"
            ),
            weight=1.5,
        ),
        _label(
            "hardware",
            "Devices, printers and monitors.",
            "laptop|monitor|printer|keyboard|mouse|docking station|power light|screen|battery",
        ),
        _label(
            "software",
            "Applications, performance and licences.",
            "software|application|crash|crashes|crashing|update|licence",
        ),
        _label("other", "None of the above."),
    ],
    intents=[IT_INCIDENT],
    defaultLabel="other",
)

# --- System ----------------------------------------------------------------------------

DOCUMENT_INTELLIGENCE: Config = {
    "intents": [SUBMISSION_REVIEW, CLAIM_INTAKE],
    "fields": [
        _field(
            "policy_numbers",
            "Policy numbers quoted in the document.",
            (r"\b[A-Z]{2,4}-[A-Z]{2,4}-\d{4}-\d{3,8}\b",),
            type_="list",
        ),
        _field(
            "dates", "Dates written as m/d/yyyy.", (r"\b\d{1,2}/\d{1,2}/\d{4}\b",), type_="list"
        ),
        _field(
            "amounts",
            "Dollar amounts.",
            (r"\$[ \t]?\d[\d,]*(?:\.\d+)?(?:[ \t]?[kKmM]{1,2}\b)?",),
            type_="list",
        ),
    ],
}

COPE_EXTRACTOR: Config = {
    "intents": [SUBMISSION_REVIEW],
    "fields": [
        _field(
            "stories",
            "Number of stories.",
            (r"(?i)\b(\d{1,2})[ \t-]*stor(?:y|ies)\b", r"(?i)\bstories[ \t.:]*(\d{1,2})\b"),
            type_="integer",
        ),
        _field(
            "total_area_sqft",
            "Total floor area in square feet.",
            (
                r"(?i)\b(\d[\d,]*(?:\.\d+)?[ \t]*k?)[ \t]*(?:sf|sq\.?[ \t]*ft|square feet)\b",
                r"(?i)\bsq\.?[ \t]*ft\b[ \t.:]*(\d[\d,]*)",
            ),
            type_="number",
            required=True,
        ),
        _field(
            "roof_year",
            "Year the roof was installed or replaced.",
            (
                r"(?i)\broof\b[ \t.:]*(?:was[ \t]+)?(?:replaced|installed|new)[ \t]+(?:in[ \t]+)?(\d{4})",
            ),
            type_="integer",
        ),
        _field(
            "fire_alarm",
            "Fire alarm: central station, local or none.",
            (
                r"(?i)\b(central\s+station|local|monitored|no)\s+(?:fire[ \t]+)?alarm\b",
                r"(?i)\balarm[ \t.:]*(central\s+station|local|none)",
            ),
            required=True,
        ),
        _field(
            "protection_class",
            "ISO public protection class (e.g. 2, 6/8B).",
            (
                r"(?i:\b(?:PPC|PC|Prot(?:ection)?\.?[ \t]+Class))[ \t.:]*"
                r"(\d{1,2}[A-Z]?(?:/\d{1,2}[A-Z]?)?)\b",
            ),
            required=True,
        ),
        _field(
            "flood_zone",
            "FEMA flood zone (X, X shaded, AE, VE, A, D).",
            (
                r"(?i:flood[ \t]+zone)[ \t.:]*([A-Z]{1,2}(?:[ \t]*\((?i:shaded)\))?)",
                r"(?i:\bzone)[ \t]+(X|AE|VE|AO|AH|A|D)\b",
            ),
            required=True,
        ),
    ],
}

EMAIL_CLASSIFICATION = _classifier(
    "mailCategory",
    [
        _label(
            "submission",
            "A broker submits a new commercial property risk.",
            (
                "new submission|named insured|tiv|sprinklered|year built|special form|"
                "property indication|submitting"
            ),
        ),
        _label(
            "submission_followup",
            "A broker's reply about a submission already sent.",
            "update on|original e-mail|my original",
            patterns=(r"(?im)^subject:[ \t]*re:", r"(?m)^>[ \t]*from:"),
        ),
        _label(
            "claim",
            "A first notice of loss on an existing policy.",
            "first notice of loss|fnol|date of loss|report a loss|assign an adjuster",
        ),
        _label(
            "it_incident",
            "Staff report an IT problem to the help desk.",
            "help desk|helpdesk|service desk|vpn|password|laptop|printer",
        ),
        _label(
            "auto_reply",
            "Automatic replies such as out-of-office notes.",
            "out of office|away from the office|automatic reply|auto-reply",
            patterns=(r"(?im)^auto-submitted:[ \t]*auto-replied",),
            weight=2.0,
        ),
        _label(
            "spam",
            "Unsolicited marketing and lures.",
            "congratulations|gift card|you have been selected|claim your reward",
            weight=1.5,
        ),
        _label("other", "Legitimate mail that is none of the above."),
    ],
    minConfidence=0.3,
    defaultLabel="other",
)

PII_FILTER: Config = {
    "fields": [
        _field(
            "email_addresses",
            "E-mail addresses.",
            (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",),
            type_="list",
        ),
        _field(
            "phone_numbers",
            "Telephone numbers.",
            (r"\b(?:\(\d{3}\)[ \t]?|\d{3}[-. ])?\d{3}[-.]\d{4}\b",),
            type_="list",
        ),
        _field(
            "payment_cards",
            "Payment card numbers.",
            (r"\b(?:\d{4}[ -]?){3}\d{1,4}\b",),
            type_="list",
        ),
        _field("us_ssns", "US social security numbers.", (r"\b\d{3}-\d{2}-\d{4}\b",), type_="list"),
    ]
}

INCIDENT_DETAILS: Config = {
    "intents": [IT_INCIDENT],
    "fields": [
        _field("reporter", "Who reported it.", (r"(?im)^from:[ \t]*\"?([^\"<\n]+?)\"?[ \t]*<",)),
        _field("subject", "The e-mail's subject line.", (r"(?im)^subject:[ \t]*([^\n]+?)[ \t]*$",)),
        _field(
            "affected_users",
            "How many users the reporter says are affected.",
            (
                r"(?i)\b(?:all[ \t]+)?[~≈]?(\d+)[ \t]+of[ \t]+us\b",
                r"(?i)\b(\d+)[ \t]+(?:users|people|staff|colleagues)\b",
            ),
            type_="integer",
        ),
        _field(
            "device",
            "The device involved.",
            (r"(?i)\b(laptop|desktop|monitor|printer|desk phone|docking station|tablet)s?\b",),
        ),
        _field(
            "error_message",
            "The error the user sees.",
            (r"(?i)\b(\d{3}[ \t]+error)\b", r"(?i)\bsays[ \t]+\"([^\"\n]{2,60})\""),
        ),
        _field("callback_phone", "Number to call back.", (r"\b(\d{3}-\d{4})\b",)),
    ],
}

RESOLVER_GROUP: Config = {"intents": [IT_INCIDENT], "ruleSet": "it-resolver-groups"}

AGENT_REGISTRY_INSPECTOR: Config = {
    "intents": [AGENT_STATUS],
    "governanceStatuses": ["pending", "under_review"],
    "includeExecutions": True,
    "limit": 20,
}

# --- Interface -------------------------------------------------------------------------

BROKER_EMAIL: Config = {
    "requiresApproval": True,
    "intents": [SUBMISSION_REVIEW],
    "system": (
        "You assist a senior commercial property underwriter at Corvale Mutual. Write a "
        "short, courteous plain-text e-mail to the submitting broker. Never invent figures."
    ),
    "prompt": (
        "Draft the e-mail to the broker about this submission.\n"
        "Risk rules outcome: {{ outputs.risk_assessment_workflow.outcome }} "
        "({{ outputs.risk_assessment_workflow.reasonCode }}).\n"
        "Facts found: {{ outputs.rachel_thompson_underwriting_assistant.values | tojson }}\n"
        "Missing (ask for each): "
        "{{ (outputs.rachel_thompson_underwriting_assistant.missing or []) | join(', ') }}\n"
        "Sign as: {{ outputs.carrier_brand_experience_agent.outcome.signature }}\n\n"
        "Submission:\n{{ command }}"
    ),
    "offlineTemplate": "broker-email-draft",
    "maxTokens": 600,
}

SERVICE_DESK_TICKET: Config = {"intents": [IT_INCIDENT], "template": "service-desk-ticket-notice"}

VOICE_INTERFACE = _classifier(
    "channel",
    [
        _label(
            "voice_note",
            "A transcribed phone call or voice note.",
            "voicemail|voice note|voice message|transcript|left a message",
        ),
        _label("typed", "Typed or pasted text."),
    ],
    defaultLabel="typed",
)

REGULATORY_REPORTING: Config = {"ruleSet": "regulatory-reporting"}

ANSWER_COMPOSER: Config = {"template": "command-response"}


def _agent(
    name: str,
    layer: Layer,
    persona: str,
    specialization: str,
    business_function: str,
    description: str,
    *,
    kind: str,
    config: Config,
    serves_all_personas: bool = False,
    governance_status: str = "approved",
    risk_level: str = "medium",
    maturity_level: int = 3,
    success_rate: float = 95.0,
    avg_response_time: int = 800,
    sla_performance: float = 97.0,
    sla_status: str = "green",
    cpu_usage: int = 12,
    can_generate_persona: bool = False,
) -> tuple[AgentCreate, AgentMetrics]:
    return (
        AgentCreate.model_validate(
            {
                "name": name,
                "layer": layer,
                "persona": persona,
                "specialization": specialization,
                "business_function": business_function,
                "description": description,
                "kind": kind,
                "config": config,
                "serves_all_personas": serves_all_personas,
                "governance_status": governance_status,
                "risk_level": risk_level,
                "maturity_level": maturity_level,
                "sla_status": sla_status,
                "can_generate_persona": can_generate_persona,
            }
        ),
        AgentMetrics(
            cpu_usage=cpu_usage,
            success_rate=success_rate,
            avg_response_time=avg_response_time,
            sla_performance=sla_performance,
        ),
    )


EXP, META, ROLE, PROC, SYS, IFACE = (
    Layer.EXPERIENCE,
    Layer.META_BRAIN,
    Layer.ROLE,
    Layer.PROCESS,
    Layer.SYSTEM,
    Layer.INTERFACE,
)

AGENTS: tuple[tuple[AgentCreate, AgentMetrics], ...] = (
    # Experience
    _agent(
        "Carrier Brand Experience Agent",
        EXP,
        "admin",
        "Tenant branding and theming",
        "compliance",
        "Applies the carrier's branding, tenant settings and persona themes to every workspace.",
        kind="rules",
        config=CARRIER_BRAND,
        serves_all_personas=True,
        risk_level="low",
        maturity_level=4,
        success_rate=99.2,
        avg_response_time=120,
        sla_performance=99.5,
    ),
    _agent(
        "Underwriting Workbench Experience Agent",
        EXP,
        "underwriter",
        "Underwriter workspace layout",
        "underwriting",
        "Arranges Rachel's workbench: submission queue, referral alerts and portfolio view.",
        kind="classifier",
        config=UNDERWRITING_WORKBENCH,
        risk_level="low",
        success_rate=98.1,
        avg_response_time=210,
        sla_performance=98.7,
    ),
    _agent(
        "Service Desk Portal Experience Agent",
        EXP,
        "it_support",
        "Service desk portal",
        "it_support",
        "Shapes the service desk portal for John's team: open incidents by "
        "priority and SLA clocks.",
        kind="classifier",
        config=SERVICE_DESK_PORTAL,
        risk_level="low",
        success_rate=97.8,
        avg_response_time=190,
        sla_performance=98.2,
    ),
    # Meta Brain
    _agent(
        "Meta Brain Orchestrator",
        META,
        "admin",
        "Command planning and agent coordination",
        "compliance",
        "Understands a command, plans which layers and agents run, and coordinates them.",
        kind="classifier",
        config=META_BRAIN_ORCHESTRATOR,
        serves_all_personas=True,
        risk_level="high",
        maturity_level=4,
        success_rate=96.4,
        avg_response_time=640,
        sla_performance=97.1,
        cpu_usage=28,
    ),
    _agent(
        "Intent Router",
        META,
        "admin",
        "Intent classification and routing",
        "compliance",
        "Classifies what the user asked for (submission, claim, incident, question) and "
        "routes it to the right persona's agents.",
        kind="classifier",
        config=INTENT_ROUTER,
        serves_all_personas=True,
        success_rate=94.9,
        avg_response_time=310,
        sla_performance=96.0,
    ),
    _agent(
        "Underwriting Workflow Coordinator",
        META,
        "underwriter",
        "Submission workflow planning",
        "underwriting",
        "Sequences intake, COPE extraction, risk scoring and referral for "
        "each commercial property submission.",
        kind="classifier",
        config=UNDERWRITING_WORKFLOW_COORDINATOR,
        success_rate=95.5,
        avg_response_time=450,
        sla_performance=96.8,
    ),
    _agent(
        "Incident Response Coordinator",
        META,
        "it_support",
        "Incident workflow planning",
        "it_support",
        "Decides triage, escalation and communication steps for each service desk incident.",
        kind="classifier",
        config=INCIDENT_RESPONSE_COORDINATOR,
        success_rate=96.0,
        avg_response_time=380,
        sla_performance=97.4,
    ),
    # Role
    _agent(
        "Rachel Thompson Underwriting Assistant",
        ROLE,
        "underwriter",
        "Commercial property underwriting",
        "underwriting",
        "Prepares Rachel's review: "
        "summarises the submission, flags missing COPE data and drafts broker questions.",
        kind="extractor",
        config=RACHEL_ASSISTANT,
        risk_level="high",
        maturity_level=4,
        success_rate=93.7,
        avg_response_time=1450,
        sla_performance=95.2,
        cpu_usage=22,
    ),
    _agent(
        "John Stevens IT Support Assistant",
        ROLE,
        "it_support",
        "Service desk operations",
        "it_support",
        "Works John's queue: proposes ITIL priority, next actions and the reply to the reporter.",
        kind="classifier",
        config=JOHN_ASSISTANT,
        success_rate=95.1,
        avg_response_time=980,
        sla_performance=96.3,
    ),
    _agent(
        "Claims Adjuster Assistant",
        ROLE,
        "admin",
        "First notice of loss handling",
        "claims",
        "Reads first notices of loss, opens the claim file and lists the documents the "
        "adjuster needs.",
        kind="classifier",
        config=CLAIMS_ADJUSTER_ASSISTANT,
        risk_level="high",
        success_rate=91.8,
        avg_response_time=1320,
        sla_performance=93.5,
        sla_status="amber",
    ),
    _agent(
        "Persona Generation Agent",
        ROLE,
        "admin",
        "Dynamic persona creation",
        "compliance",
        "Generates new role personas (e.g. claims manager, broker relations) with their "
        "agents and dashboards on request.",
        kind="extractor",
        config=PERSONA_GENERATION,
        governance_status="under_review",
        risk_level="high",
        maturity_level=2,
        success_rate=88.0,
        avg_response_time=2100,
        sla_performance=90.0,
        sla_status="amber",
        can_generate_persona=True,
    ),
    # Process
    _agent(
        "Commercial Property Submission Workflow",
        PROC,
        "underwriter",
        "Submission intake",
        "underwriting",
        "Turns a broker e-mail into a submission record: insured, "
        "locations, values, requested coverage and effective date.",
        kind="extractor",
        config=SUBMISSION_WORKFLOW,
        risk_level="high",
        maturity_level=4,
        success_rate=94.3,
        avg_response_time=1800,
        sla_performance=95.0,
    ),
    _agent(
        "Risk Assessment Workflow",
        PROC,
        "underwriter",
        "COPE-based risk scoring",
        "underwriting",
        "Scores construction, occupancy, protection and exposure and "
        "decides quote, refer or decline within appetite.",
        kind="rules",
        config=RISK_ASSESSMENT,
        risk_level="critical",
        maturity_level=3,
        success_rate=92.6,
        avg_response_time=2200,
        sla_performance=94.1,
        sla_status="amber",
    ),
    _agent(
        "Claims FNOL Workflow",
        PROC,
        "admin",
        "First notice of loss intake",
        "claims",
        "Registers the loss, checks the policy is in force and assigns an adjuster.",
        kind="extractor",
        config=CLAIMS_FNOL,
        risk_level="high",
        success_rate=93.9,
        avg_response_time=1650,
        sla_performance=95.4,
    ),
    _agent(
        "IT Incident Triage Workflow",
        PROC,
        "it_support",
        "ITIL incident triage",
        "it_support",
        "Sets category, impact, urgency and priority, and assigns the resolver group.",
        kind="rules",
        config=IT_TRIAGE,
        success_rate=96.7,
        avg_response_time=720,
        sla_performance=97.9,
    ),
    _agent(
        "Incident Category Classifier",
        PROC,
        "it_support",
        "ITIL incident categories",
        "it_support",
        "Files each incident under network, e-mail, access, security, hardware or software.",
        kind="classifier",
        config=INCIDENT_CATEGORY,
        risk_level="low",
        success_rate=96.2,
        avg_response_time=240,
        sla_performance=98.0,
    ),
    # System
    _agent(
        "Document Intelligence Extractor",
        SYS,
        "admin",
        "Attachment and document parsing",
        "underwriting",
        "Reads schedules of values, loss runs and ACORD forms and returns "
        "structured fields with confidences.",
        kind="extractor",
        config=DOCUMENT_INTELLIGENCE,
        serves_all_personas=True,
        risk_level="high",
        success_rate=92.2,
        avg_response_time=2600,
        sla_performance=93.0,
        sla_status="amber",
        cpu_usage=41,
    ),
    _agent(
        "COPE Data Extractor",
        SYS,
        "underwriter",
        "Construction, occupancy, protection, exposure",
        "underwriting",
        "Extracts year built, construction class, "
        "sprinklers, protection class and flood zone per building.",
        kind="extractor",
        config=COPE_EXTRACTOR,
        risk_level="high",
        success_rate=93.4,
        avg_response_time=1900,
        sla_performance=94.6,
    ),
    _agent(
        "Email Classification Agent",
        SYS,
        "admin",
        "Inbound mail classification",
        "compliance",
        "Sorts inbound mail into submission, claim, IT incident, follow-up, auto-reply or spam.",
        kind="classifier",
        config=EMAIL_CLASSIFICATION,
        serves_all_personas=True,
        success_rate=97.3,
        avg_response_time=260,
        sla_performance=98.8,
    ),
    _agent(
        "PII Security Filter",
        SYS,
        "admin",
        "Personal data redaction",
        "compliance",
        "Detects and masks personal and payment data before text leaves the platform; "
        "strips active content from HTML mail.",
        kind="extractor",
        config=PII_FILTER,
        serves_all_personas=True,
        governance_status="approved",
        risk_level="critical",
        maturity_level=4,
        success_rate=99.1,
        avg_response_time=150,
        sla_performance=99.6,
    ),
    _agent(
        "Incident Details Extractor",
        SYS,
        "it_support",
        "Incident facts",
        "it_support",
        "Pulls the reporter, affected users, device, error and call-back number from an "
        "incident report.",
        kind="extractor",
        config=INCIDENT_DETAILS,
        risk_level="low",
        success_rate=95.8,
        avg_response_time=280,
        sla_performance=97.6,
    ),
    _agent(
        "Resolver Group Router",
        SYS,
        "it_support",
        "Resolver group assignment",
        "it_support",
        "Assigns each incident to its resolver group from the category and priority.",
        kind="rules",
        config=RESOLVER_GROUP,
        risk_level="low",
        success_rate=98.6,
        avg_response_time=90,
        sla_performance=99.1,
    ),
    _agent(
        "Agent Registry Inspector",
        SYS,
        "admin",
        "Agent governance status",
        "compliance",
        "Answers which agents await governance approval and which executions wait for a "
        "human decision.",
        kind="agent_status",
        config=AGENT_REGISTRY_INSPECTOR,
        serves_all_personas=True,
        risk_level="low",
        maturity_level=4,
        success_rate=99.4,
        avg_response_time=60,
        sla_performance=99.7,
    ),
    # Interface
    _agent(
        "Broker Email Response Agent",
        IFACE,
        "underwriter",
        "Broker correspondence",
        "underwriting",
        "Drafts acknowledgements and requests for missing information to "
        "brokers for Rachel to approve.",
        kind="llm",
        config=BROKER_EMAIL,
        success_rate=95.9,
        avg_response_time=900,
        sla_performance=96.9,
    ),
    _agent(
        "Service Desk Ticket Connector",
        IFACE,
        "it_support",
        "ITSM ticket integration",
        "it_support",
        "Creates and updates service desk tickets and notifies the reporter.",
        kind="template",
        config=SERVICE_DESK_TICKET,
        success_rate=98.4,
        avg_response_time=340,
        sla_performance=99.0,
    ),
    _agent(
        "Voice Interface Agent",
        IFACE,
        "admin",
        "Voice commands and transcripts",
        "claims",
        "Turns phone and voice notes into commands and transcripts.",
        kind="classifier",
        config=VOICE_INTERFACE,
        governance_status="pending",
        risk_level="medium",
        maturity_level=2,
        success_rate=89.5,
        avg_response_time=1200,
        sla_performance=91.0,
        sla_status="amber",
    ),
    _agent(
        "Regulatory Reporting API Agent",
        IFACE,
        "admin",
        "Regulatory and bordereaux feeds",
        "compliance",
        "Publishes decision logs and bordereaux to regulators and partners through the API.",
        kind="rules",
        config=REGULATORY_REPORTING,
        risk_level="high",
        success_rate=97.0,
        avg_response_time=700,
        sla_performance=98.0,
    ),
    _agent(
        "Answer Composer Agent",
        IFACE,
        "admin",
        "The answer to the user",
        "compliance",
        "Writes the answer the user sees, from what the other agents found, for every intent.",
        kind="template",
        config=ANSWER_COMPOSER,
        serves_all_personas=True,
        risk_level="low",
        maturity_level=4,
        success_rate=98.9,
        avg_response_time=110,
        sla_performance=99.3,
    ),
)

# --- rule tables -----------------------------------------------------------------------


def _when(field: str, op: str, value: Any = None) -> Config:
    return {"field": field, "op": op, "value": value}


def _rule(outcome: Any, reason: str, *conditions: Config) -> Config:
    return {"when": list(conditions), "outcome": outcome, "reasonCode": reason}


_IMPACT = "outputs.incident_response_coordinator.impact"
_URGENCY = "outputs.john_stevens_it_support_assistant.urgency"
_KEY_FACTS = "outputs.rachel_thompson_underwriting_assistant"
_UNSPRINKLERED = ["none", "None", "NONE", "no", "No", "NO", "non", "Non"]

# The ITIL matrix (impact x urgency) the service desk works to.
_ITIL_MATRIX = (
    ("high", "high", "P1"),
    ("high", "medium", "P2"),
    ("high", "low", "P3"),
    ("medium", "high", "P2"),
    ("medium", "medium", "P3"),
    ("medium", "low", "P4"),
    ("low", "high", "P3"),
    ("low", "medium", "P4"),
    ("low", "low", "P5"),
)

RULE_SETS: tuple[RuleSetIn, ...] = (
    RuleSetIn.model_validate(
        {
            "name": "carrier-brand",
            "description": "The carrier brand and sign-off each persona's workspace uses.",
            "definition": {
                "rules": [
                    _rule(
                        {
                            "carrier": "Corvale Mutual",
                            "workspace": "Underwriting Workbench",
                            "signature": "Rachel Thompson\nSenior Commercial Property "
                            "Underwriter, Corvale Mutual",
                        },
                        "persona_underwriter",
                        _when("persona", "eq", "underwriter"),
                    ),
                    _rule(
                        {
                            "carrier": "Corvale Mutual",
                            "workspace": "Service Desk Portal",
                            "signature": "Corvale Mutual IT Service Desk",
                        },
                        "persona_it_support",
                        _when("persona", "eq", "it_support"),
                    ),
                ],
                "defaultOutcome": {
                    "carrier": "Corvale Mutual",
                    "workspace": "Operations Console",
                    "signature": "Corvale Mutual",
                },
                "defaultReasonCode": "carrier_default",
            },
        }
    ),
    RuleSetIn.model_validate(
        {
            "name": "property-risk-appetite",
            "description": "Commercial property appetite: decline, request information, "
            "refer or quote, from the occupancy and the submission's key facts.",
            "definition": {
                "rules": [
                    _rule(
                        "decline",
                        "occupancy_out_of_appetite",
                        _when(
                            "outputs.underwriting_workflow_coordinator.occupancy",
                            "eq",
                            "out_of_appetite",
                        ),
                    ),
                    _rule(
                        "request_information",
                        "key_data_missing",
                        _when(f"{_KEY_FACTS}.missing", "ne", []),
                    ),
                    _rule(
                        "refer",
                        "tiv_above_authority",
                        _when(f"{_KEY_FACTS}.values.tiv", "gt", 25_000_000),
                    ),
                    _rule(
                        "refer",
                        "high_hazard_unsprinklered",
                        _when(
                            "outputs.underwriting_workflow_coordinator.occupancy",
                            "in",
                            ["extra_1", "extra_2"],
                        ),
                        _when(f"{_KEY_FACTS}.values.sprinklers", "in", _UNSPRINKLERED),
                    ),
                    _rule(
                        "refer",
                        "old_building_unsprinklered",
                        _when(f"{_KEY_FACTS}.values.year_built", "lt", 1960),
                        _when(f"{_KEY_FACTS}.values.sprinklers", "in", _UNSPRINKLERED),
                    ),
                ],
                "defaultOutcome": "quote",
                "defaultReasonCode": "within_appetite",
            },
        }
    ),
    RuleSetIn.model_validate(
        {
            "name": "itil-priority",
            "description": "ITIL priority from impact and urgency (P1 highest, P5 lowest).",
            "definition": {
                "rules": [
                    _rule(
                        priority,
                        f"impact_{impact}_urgency_{urgency}",
                        _when(_IMPACT, "eq", impact),
                        _when(_URGENCY, "eq", urgency),
                    )
                    for impact, urgency, priority in _ITIL_MATRIX
                ],
                "defaultOutcome": "P3",
                "defaultReasonCode": "impact_or_urgency_unknown",
            },
        }
    ),
    RuleSetIn.model_validate(
        {
            "name": "it-resolver-groups",
            "description": "Which resolver group takes an incident: P1s go to major "
            "incident management, the rest by category.",
            "definition": {
                "rules": [
                    _rule(
                        "Major Incident Management",
                        "priority_p1",
                        _when("outputs.it_incident_triage_workflow.outcome", "eq", "P1"),
                    ),
                    *(
                        _rule(
                            group,
                            f"category_{category}",
                            _when("outputs.incident_category_classifier.category", "eq", category),
                        )
                        for category, group in (
                            ("network", "Network Operations"),
                            ("email", "Messaging & Collaboration"),
                            ("access", "Identity & Access Management"),
                            ("security", "Security Operations Center"),
                            ("hardware", "End-User Computing"),
                            ("software", "Application Support"),
                        )
                    ),
                ],
                "defaultOutcome": "Service Desk (Tier 1)",
                "defaultReasonCode": "category_other",
            },
        }
    ),
    RuleSetIn.model_validate(
        {
            "name": "regulatory-reporting",
            "description": "Which regulatory or partner feed an execution's decision goes to.",
            "definition": {
                "rules": [
                    _rule(
                        "underwriting_decision_log",
                        "underwriting_decision",
                        _when("plan.intent", "eq", SUBMISSION_REVIEW),
                    ),
                    _rule(
                        "claims_bordereau",
                        "claim_notified",
                        _when("plan.intent", "eq", CLAIM_INTAKE),
                    ),
                ],
                "defaultOutcome": "not_reportable",
                "defaultReasonCode": "no_regulated_decision",
            },
        }
    ),
)

# --- templates -------------------------------------------------------------------------

# What the submission templates call each key fact when it is missing.
_FACT_LABELS = (
    '{% set labels = {"insured_name": "named insured", "tiv": "total insured value (TIV)", '
    '"year_built": "year built", "construction": "construction type", '
    '"sprinklers": "sprinkler protection", "effective_date": "effective date", '
    '"address": "risk address", "total_area_sqft": "floor area", '
    '"fire_alarm": "fire alarm", "protection_class": "public protection class", '
    '"flood_zone": "flood zone"} %}\n'
)

COMMAND_RESPONSE = (
    "{% filter trim %}\n"
    '{% macro money(v) %}{% if v is number %}${{ "{:,.0f}".format(v) }}'
    "{% else %}{{ v }}{% endif %}{% endmacro %}\n"
    "{% set intent = plan.intent %}\n"
    + _FACT_LABELS
    + """\
{% if intent == "submission_review" %}
{% set key = outputs.rachel_thompson_underwriting_assistant %}
{% set sub = outputs.commercial_property_submission_workflow.values %}
{% set cope = outputs.cope_data_extractor.values %}
{% set risk = outputs.risk_assessment_workflow %}
{% set facts = key.values %}
{% set parts = [sub.building_value, sub.bpp_value, sub.bi_value] | select("number") | list %}
{% set tiv = facts.tiv if facts.tiv is number else (parts | sum if parts else none) %}
{% set found = [
  ("TIV", (money(tiv) ~ ("" if facts.tiv is number else " (sum of the values)")) if tiv is number else none),
  ("year built", facts.year_built),
  ("construction", facts.construction),
  ("sprinklers", facts.sprinklers),
  ("effective", facts.effective_date),
  ("address", sub.address),
  ("building", money(sub.building_value) if sub.building_value is number else none),
  ("BPP", money(sub.bpp_value) if sub.bpp_value is number else none),
  ("BI", money(sub.bi_value) if sub.bi_value is number else none),
  ("occupancy", outputs.underwriting_workflow_coordinator.occupancy),
  ("area sq ft", cope.total_area_sqft),
  ("alarm", cope.fire_alarm),
  ("PPC", cope.protection_class),
  ("flood zone", cope.flood_zone),
] | selectattr("1") | list %}
{% set missing = (["tiv"] if tiv is none else []) + (key.missing or []) + (outputs.commercial_property_submission_workflow.missing or []) + (outputs.cope_data_extractor.missing or []) %}
Submission review: {{ facts.insured_name or "insured not named" }}
Found: {% for label, value in found %}{{ label }} {{ value | string | replace("\n", " ") }}{{ "; " if not loop.last }}{% else %}no submission details yet{% endfor %}.
Missing: {% for name in missing %}{{ labels.get(name, name) }}{{ ", " if not loop.last }}{% else %}nothing{% endfor %}.
Risk assessment: {{ risk.outcome or "not assessed" }}{% if risk.outcome %} ({{ risk.reasonCode }}; rule table {{ risk.ruleSet }} v{{ risk.version }}){% endif %}.
{% if risk.outcome == "decline" %}
Next step: decline; the e-mail to the broker below needs your approval.
{% elif risk.outcome == "request_information" %}
Next step: ask the broker for what is missing; the e-mail to the broker below needs your approval.
{% elif risk.outcome == "refer" %}
Next step: refer to a senior underwriter; the e-mail to the broker below needs your approval.
{% else %}
Next step: prepare terms; the acknowledgement to the broker below needs your approval.
{% endif %}
{% elif intent == "it_incident" %}
{% set d = outputs.incident_details_extractor.values %}
{% set triage = outputs.it_incident_triage_workflow %}
{% set group = outputs.resolver_group_router.outcome %}
Incident ticket: {{ d.subject or ((command | trim).splitlines() | first | truncate(90)) }}
Priority {{ triage.outcome or "unset" }} (impact {{ outputs.incident_response_coordinator.impact or "unknown" }}, urgency {{ outputs.john_stevens_it_support_assistant.urgency or "unknown" }}; rule table {{ triage.ruleSet }} v{{ triage.version }})
Category: {{ outputs.incident_category_classifier.category or "other" }} | Resolver group: {{ group or "Service Desk (Tier 1)" }}
{% set details = [
  ("reported by", d.reporter),
  ("affected users", d.affected_users),
  ("device", d.device),
  ("error", d.error_message),
  ("call back", d.callback_phone),
] | selectattr("1") | list %}
{% if details %}
Details: {% for label, value in details %}{{ label }} {{ value }}{{ "; " if not loop.last }}{% endfor %}.
{% endif %}
{% elif intent == "agent_status" %}
{% set status = outputs.agent_registry_inspector %}
{% if status %}
{{ status.summary }}
{% for a in status.agents %}
- {{ a.name }} ({{ a.layer }} layer, {{ a.persona }}): {{ a.governanceStatus }}
{% endfor %}
{% if status.executions %}
Executions awaiting a decision:
{% for e in status.executions %}
- {{ e.executionId }} "{{ e.command | truncate(60) }}" ({{ e.persona }})
{% endfor %}
{% endif %}
{% else %}
The Agent Registry Inspector did not run, so the agents' status is unknown.
{% endif %}
{% elif intent == "claim_intake" %}
{% set claim = outputs.claims_fnol_workflow %}
First notice of loss: policy {{ claim.values.policy_number or "not given" }}, date of loss {{ claim.values.date_of_loss or "not given" }}, peril {{ outputs.claims_adjuster_assistant.peril or "unclassified" }}.
{% if claim.values.loss_location %}
Location: {{ claim.values.loss_location }}.
{% endif %}
{% if claim.missing %}
Missing: {{ claim.missing | join(", ") }}.
{% endif %}
{% else %}
I can review commercial property submissions, triage IT incidents, take first notices of loss and tell you which agents wait for approval. For example: "Review the new submission from Acme Logistics", "Laptop won't connect to VPN, urgent" or "Which agents are waiting for approval?"
{% endif %}
{% endfilter %}
"""
)

BROKER_EMAIL_DRAFT = (
    "{% filter trim %}\n"
    + _FACT_LABELS
    + """\
{% set key = outputs.rachel_thompson_underwriting_assistant %}
{% set facts = key.values %}
{% set sub = outputs.commercial_property_submission_workflow.values %}
{% set stated = [facts.tiv, sub.building_value, sub.bpp_value, sub.bi_value] | select("number") | list %}
{% set missing = (["tiv"] if not stated else []) + (key.missing or []) %}
{% set risk = outputs.risk_assessment_workflow.outcome %}
{% set insured = facts.insured_name or "your client" %}
To: {{ facts.broker_email or "the submitting broker" }}
Subject: {{ facts.insured_name or "Your submission" }} - {% if risk == "decline" %}outside our appetite{% elif risk == "request_information" %}information needed to complete our review{% elif risk == "refer" %}under senior review{% else %}submission received{% endif %}


Dear {{ facts.broker_name.split() | first if facts.broker_name else "colleague" }},

Thank you for the submission for {{ insured }}{{ "" if insured.endswith(".") else "." }}
{% if risk == "decline" %}
Unfortunately the occupancy is outside our appetite, so we are unable to offer terms on this risk.
{% elif risk == "request_information" %}
To complete our review, please send us:
{% for name in missing %}
- {{ labels.get(name, name) }}
{% endfor %}
{% elif risk == "refer" %}
The risk has been referred for senior underwriting review; we will come back to you shortly.
{% else %}
We have what we need and will come back to you with terms{% if facts.effective_date %} ahead of the {{ facts.effective_date }} effective date{% endif %}.
{% endif %}

Kind regards,
{{ outputs.carrier_brand_experience_agent.outcome.signature or "Corvale Mutual" }}
{% endfilter %}
"""
)

SERVICE_DESK_TICKET_NOTICE = """\
{% filter trim %}
{% if plan.intent == "it_incident" %}
{% set d = outputs.incident_details_extractor.values %}
Notice to {{ d.reporter or "the reporter" }}:
Hello{{ " " ~ (d.reporter.split() | first) if d.reporter }}, we have logged your incident "{{ d.subject or ((command | trim).splitlines() | first | truncate(90)) }}" with priority {{ outputs.it_incident_triage_workflow.outcome or "to be set" }} and assigned it to {{ outputs.resolver_group_router.outcome or "the service desk" }}.{% if d.callback_phone %} We will call you back on {{ d.callback_phone }}.{% endif %}


{{ outputs.carrier_brand_experience_agent.outcome.signature or "IT Service Desk" }}
{% endif %}
{% endfilter %}
"""

TEMPLATES: tuple[TemplateIn, ...] = (
    TemplateIn(
        name="command-response",
        description="The answer to a command, by intent (Answer Composer Agent).",
        body=COMMAND_RESPONSE,
    ),
    TemplateIn(
        name="broker-email-draft",
        description="The e-mail to the broker about a submission; rendered offline in place "
        "of the Broker Email Response Agent's model.",
        body=BROKER_EMAIL_DRAFT,
    ),
    TemplateIn(
        name="service-desk-ticket-notice",
        description="The notice to the person who reported an IT incident.",
        body=SERVICE_DESK_TICKET_NOTICE,
    ),
)
