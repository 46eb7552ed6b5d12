"""Click through the dashboard as a release engineer would, in a real browser."""

from tests.browser.conftest import screenshot
from tracker.models import Fork


def test_overview_to_fork_to_branch(page):
    assert page.title() == "Overview · Fork health"
    assert page.locator("section.fork h2 a").count() == Fork.objects.count()
    screenshot(page, "overview")

    page.click("text=Acme Browser")
    page.wait_for_selector("#trends canvas")
    assert page.locator("h1").inner_text().startswith("Acme Browser")
    # The charts drew: Chart.js sized every canvas from the trends data.
    page.wait_for_function(
        "[...document.querySelectorAll('#trends canvas')]"
        ".every(c => c.height > 0 && Chart.getChart(c))"
    )
    assert page.locator("#trends .error").count() == 0
    screenshot(page, "fork")

    page.click("table a:has-text('main')")
    page.wait_for_selector("table.patches")
    rows = page.locator("table.patches tbody tr")
    assert rows.count() >= 1
    assert page.locator("text=candidate to drop").count() == 1  # the upstreamed patch
    assert page.locator("table.patches .status-overdue").count() >= 1  # a predicted conflict
    screenshot(page, "branch")
