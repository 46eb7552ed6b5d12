"""The profile page: users manage themselves. The address alert mail goes to, and for every
fork whether its alerts come by mail now, in the daily digest or not at all
(`tracker.models.DeliveryMode`; saved by `tracker.alerts.subscriptions`)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import BaseUserManager
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from tracker.alerts.subscriptions import FOLLOW, set_subscriptions, subscription_choices
from tracker.models import DeliveryMode, Fork
from tracker.models.repos import split_emails

FORK_CHOICES = [(FOLLOW, "as every fork"), *DeliveryMode.choices]


def _fork_field(fork: Fork) -> str:
    return f"fork-{fork.slug}"


class ProfileForm(forms.Form):
    """The address, the every-fork choice and one choice per fork (``fork-<slug>``)."""

    email = forms.EmailField(
        required=False,
        max_length=254,
        label="Email address",
        help_text="Alert mail goes here; empty: no alert mail for you.",
    )
    every = forms.ChoiceField(choices=DeliveryMode.choices, label="Every fork")

    def __init__(self, forks: list[Fork], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.forks = forks
        for fork in forks:
            # Not required: the empty choice is FOLLOW.
            self.fields[_fork_field(fork)] = forms.ChoiceField(
                choices=FORK_CHOICES, required=False, label=fork.name
            )

    def fork_choices(self) -> dict[int, str]:
        """{fork id: choice} for the forks the form sent (a fork added since the page was
        shown keeps what it has)."""
        return {
            fork.pk: self.cleaned_data[_fork_field(fork)]
            for fork in self.forks
            if self.add_prefix(_fork_field(fork)) in self.data
        }


def _owns(email: str, fork: Fork) -> bool:
    return bool(email) and email.lower() in {a.lower() for a in split_emails(fork.owner_emails)}


def _profile_page(
    request: HttpRequest, forks: list[Fork], form: ProfileForm, status: int = 200
) -> HttpResponse:
    # Owners get their forks' alerts whatever they choose here; the page says so.
    email = request.user.email
    ctx = {
        "form": form,
        "rows": [(fork, form[_fork_field(fork)], _owns(email, fork)) for fork in forks],
        "modes": DeliveryMode,
    }
    return render(request, "tracker/profile.html", ctx, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Show the user's address and alert mail choices; POST saves them all at once."""
    forks = list(Fork.objects.select_related("upstream").order_by("name", "pk"))
    if request.method != "POST":
        every, chosen = subscription_choices(request.user)
        initial = {"email": request.user.email, "every": every}
        initial |= {_fork_field(fork): chosen.get(fork.pk, FOLLOW) for fork in forks}
        return _profile_page(request, forks, ProfileForm(forks, initial=initial))
    form = ProfileForm(forks, request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was saved: correct the marked fields.")
        return _profile_page(request, forks, form, status=400)
    user = request.user
    with transaction.atomic():
        user.email = BaseUserManager.normalize_email(form.cleaned_data["email"])
        user.save(update_fields=["email"])
        set_subscriptions(user, form.cleaned_data["every"], form.fork_choices())
    if user.email:
        messages.success(request, f"Saved. Alert mail goes to {user.email}.")
    else:
        messages.warning(request, "Saved. Your account has no email address: no alert mail.")
    return redirect("profile")
