"""What the demo contains. Edited here, loaded by ``jarvis seed demo``."""

from __future__ import annotations

from dataclasses import dataclass

from jarvis.agents.layers import Layer
from jarvis.agents.schemas import AgentCreate, AgentMetrics
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


def _agent(
    name: str,
    layer: Layer,
    persona: str,
    specialization: str,
    business_function: str,
    description: str,
    *,
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
        success_rate=96.7,
        avg_response_time=720,
        sla_performance=97.9,
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
        governance_status="approved",
        risk_level="critical",
        maturity_level=4,
        success_rate=99.1,
        avg_response_time=150,
        sla_performance=99.6,
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
        risk_level="high",
        success_rate=97.0,
        avg_response_time=700,
        sla_performance=98.0,
    ),
)
