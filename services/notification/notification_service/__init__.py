"""Notification service: help-request queues, offers to agents over WebSocket, live dashboards."""
