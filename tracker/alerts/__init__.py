"""Alerts: rules that find conditions worth telling release engineers about."""
