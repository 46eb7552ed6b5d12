"""Click through the dashboard as a release engineer would, in a real browser."""

import re
from pathlib import Path

from tests.browser.conftest import screenshot
from tracker.models import FixStatus, FixTriage, Fork


def test_overview_to_fork_to_branch(page):
    assert page.title() == "Overview · Fork health"
    assert page.locator("section.fork h2 a").count() == Fork.objects.count()
    screenshot(page, "overview")

    page.click("text=Acme Browser")
    page.wait_for_selector("#trends canvas")
    assert page.locator("h1").inner_text().startswith("Acme Browser")
    # The charts drew: Chart.js sized every canvas from the trends data.
    # (The canvases are in the page before its scripts have run: wait for Chart.js too.)
    page.wait_for_function(
        "typeof Chart !== 'undefined' && [...document.querySelectorAll("
        "'#trends canvas, #security-trends canvas')].every(c => c.height > 0 && Chart.getChart(c))"
    )
    assert page.locator("#trends .error, #security-trends .error").count() == 0
    assert page.locator("table.releases tbody tr").count() >= 1
    screenshot(page, "fork")

    page.click("table a:has-text('main')")
    page.wait_for_selector("table.patches")
    rows = page.locator("table.patches tbody tr")
    assert rows.count() >= 1
    assert page.locator("text=candidate to drop").count() == 1  # the upstreamed patch
    assert page.locator("table.patches .status-overdue").count() >= 1  # a predicted conflict
    screenshot(page, "branch")


def test_branch_to_cve_to_lookup_to_triage(page):
    """overview → fork → branch → a CVE its tip lacks → the lookup box → a triage decision."""
    row = (
        FixStatus.objects.filter(branch__isnull=False, status="open", fork__kind="git")
        .select_related("branch__fork", "vulnerability")
        .order_by("branch__fork__name", "branch__name", "vulnerability__cve")
        .first()
    )
    assert row is not None, "the demo has a branch tip lacking a fix"
    fork, cve = row.branch.fork, row.vulnerability.cve

    page.click(f"section.fork h2 a:has-text('{fork.name}')")
    page.wait_for_selector("table.releases")
    page.click(f"table a:has-text('{row.branch.name}')")
    page.wait_for_selector("table.open-fixes")
    page.click(f"table.open-fixes a:has-text('{cve}')")
    page.wait_for_selector(f"section#fork-{fork.slug}")
    assert page.locator("h1").inner_text().startswith(cve)
    section = page.locator(f"section#fork-{fork.slug}")
    assert section.locator(".fix-open").count() >= 1
    assert page.locator("table.evidence li").count() >= 1  # evidence per fix part
    screenshot(page, "cve")

    box = page.get_by_role("searchbox")
    box.fill(cve)
    box.press("Enter")
    page.wait_for_url(re.compile(r"/lookup/\?q="))
    assert page.locator(f"section.answer a:has-text('{cve}')").count() == 1
    assert page.locator("section.answer .fix").count() >= 1  # its status in fork targets
    screenshot(page, "lookup")

    page.click(f"section.answer a:has-text('{cve}')")
    page.wait_for_selector(f"section#fork-{fork.slug} form.triage")
    form = page.locator(f"section#fork-{fork.slug} form.triage")
    form.locator("select[name=decision]").select_option("not_affected")
    form.locator("textarea[name=reason]").fill("We do not build this component.")
    form.locator("button[type=submit]").click()
    page.wait_for_selector(".message")
    assert "recorded as not affected" in page.locator(".message").inner_text()
    section = page.locator(f"section#fork-{fork.slug}")
    assert section.locator(".fix-open").count() == 0
    assert section.locator(".fix-not_affected").count() >= 1
    assert "triaged: not affected" in section.locator("h3").inner_text()
    history = page.locator("table.history tbody").inner_text()
    assert "We do not build this component." in history and "reviewer" in history
    assert FixTriage.objects.filter(fork=fork, vulnerability=row.vulnerability).count() == 1
    screenshot(page, "triage")


def test_security_matrix_csv_and_sync_pages(page):
    page.click("nav >> text=Security")
    page.wait_for_selector("table.matrix")
    first = Fork.objects.order_by("name").first()
    assert first.name in page.locator("h1").inner_text()
    assert page.locator("table.matrix tbody tr").count() >= 1
    assert page.locator("table.matrix tbody td[class^=fix-]").count() >= 1
    screenshot(page, "security-matrix")

    # Filter: critical fixes of another fork.
    other = Fork.objects.order_by("name")[1]
    page.select_option("form.filters select[name=fork]", other.slug)
    page.select_option("form.filters select[name=severity]", "critical")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(rf"fork={other.slug}.*severity=critical"))
    severities = page.locator("table.matrix tbody .sev").all_inner_texts()
    assert severities and set(severities) == {"critical"}

    with page.expect_download() as download:
        page.click("text=Download CSV")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    lines = text.strip().splitlines()
    assert lines[0].startswith("cve,severity,in_the_wild")
    assert len(lines) - 1 == len(severities)
    assert all(",critical," in line for line in lines[1:])

    page.click("nav >> text=Sync status")
    page.wait_for_selector("h1:has-text('Sync status')")
    assert page.locator("text=refs/heads/main").count() >= 1  # an ingest cursor
    assert page.locator("table >> text=Acme Browser").count() == 1
    screenshot(page, "sync")

    page.goto("/lookup/?q=no-such-thing")
    assert page.locator("text=Nothing matched").count() == 1


def test_alerts_list_detail_acknowledge_and_snooze(page):
    from tracker.models import Alert

    # The demo evaluated the alerts after its syncs; the list shows the open ones.
    page.click("nav >> text=Alerts")
    page.wait_for_selector("table.alerts")
    open_alerts = Alert.objects.filter(state="open")
    assert open_alerts.exists()
    assert page.locator("table.alerts tbody tr").count() == open_alerts.count()
    screenshot(page, "alerts")

    row = page.locator("table.alerts tbody tr").first
    summary = row.locator("td a").first.inner_text()
    row.locator("td a").first.click()
    page.wait_for_selector("table.events")
    assert summary in page.locator("h1").inner_text()
    assert page.locator("table.events >> text=opened").count() >= 1

    page.select_option("select[name=for]", "3d")
    page.click("button:has-text('Snooze')")
    page.wait_for_selector("text=snoozed until")
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("text=acknowledged by reviewer")
    assert page.locator("button:has-text('Acknowledge')").count() == 0
    history = page.locator("table.events tbody").inner_text()
    assert "acknowledged by reviewer" in history and "snoozed by reviewer" in history
    screenshot(page, "alert")
