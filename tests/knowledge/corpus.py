"""A small fixed corpus and question set, written for this project, to measure the search's recall.

Twelve documents on unrelated everyday subjects (a few paragraphs each, some long enough for
several chunks), and 31 questions, each answered by one document (its name beside it). Most
questions are worded as a person would ask them, not copied from the text: some share only one
or two words with their answer, and six avoid its key terms ("pooch" for pets, "shots" for
vaccinations, "commute" for travel between home and work; marked `by_meaning`): those a lexical
search can only find by chance, and they are what the vector search is for. Recall@k: the share
of questions whose document is among the first k results. docs/PERFORMANCE.md reports the figures
(tests/knowledge/test_quality.py).
"""

from __future__ import annotations

from dataclasses import dataclass

DOCUMENTS: dict[str, str] = {
    "employment-contract.txt": (
        "Employment contract. The employee starts on 1 March and works 37 hours a week at the Aarhus office. "
        "The monthly salary is 42,000 kroner, paid on the last banking day of the month. "
        "Either party may end the contract with three months' notice; during the first three months of "
        "probation the notice period is fourteen days. The employee has 25 days of paid holiday a year and "
        "may carry up to five unused days over to the next year. Overtime is paid at 150 percent or taken "
        "as time off by agreement with the manager. The employee may not work for a competitor during "
        "employment. Sick leave must be reported to the manager before 9 o'clock on the first day."),
    "apartment-lease.txt": (
        "Lease for the apartment at Nørrebrogade 12, third floor. The rent is 9,800 kroner a month and is due "
        "on the first of each month. The deposit is three months' rent and is repaid when the tenant moves "
        "out, less the cost of any damage. Pets are allowed only with written permission from the landlord. "
        "The tenant must keep the stairwell free of bicycles and prams. Heating and water are paid on "
        "account and settled once a year. The lease may be ended by the tenant with three months' notice."),
    "sourdough-recipe.md": (
        "# Sourdough bread\n\nFeed the starter the evening before. Mix 500 g of flour, 350 g of water and "
        "100 g of active starter; rest for one hour, then add 10 g of salt. Stretch and fold four times, "
        "half an hour apart. Let the dough rise overnight in the fridge. Bake in a preheated cast iron pot "
        "at 250 degrees: twenty minutes with the lid on, then twenty-five minutes without, until the crust "
        "is deep brown. Let the loaf cool for an hour before cutting it."),
    "bike-maintenance.md": (
        "# Looking after your bicycle\n\nPump the tyres every two weeks: city tyres want 4 to 5 bar. Clean and "
        "oil the chain once a month, and after every ride in the rain; wipe off the excess oil so it does "
        "not collect dirt. Check the brake pads: when the grooves are gone, replace them. A squeaking brake "
        "often only needs the rim cleaned with alcohol. Before winter, check the lights and fit tyres with "
        "a deeper tread."),
    "garden-calendar.html": (
        "<html><body><h1>The garden through the year</h1><p>In March, prune the apple trees before the buds "
        "open and sow tomatoes indoors on a windowsill.</p><p>In May, after the last frost, plant out the "
        "tomatoes and sow beans and courgettes directly in the beds.</p><p>In October, plant tulip and "
        "daffodil bulbs about three times as deep as the bulb is tall, and rake the leaves onto the "
        "compost heap.</p><script>track()</script></body></html>"),
    "travel-insurance.txt": (
        "Travel insurance terms. The insurance covers medical treatment abroad, transport home after "
        "illness or injury, and lost luggage up to 20,000 kroner. Trips of up to 60 days are covered. "
        "Dangerous sports such as skydiving and mountaineering above 4,000 metres are not covered. "
        "A delayed flight is compensated with 500 kroner per started eight hours of delay. Claims must be "
        "filed within six months with receipts and, for theft, a police report."),
    "it-security-policy.txt": (
        "Information security policy. Passwords must be at least 14 characters and must not be reused "
        "between systems. Two-factor authentication is required for email and the VPN. Laptops are "
        "encrypted and locked after five minutes without use. Report a lost phone or laptop to the IT "
        "helpdesk within one hour. Never forward internal documents to a private email address. Software "
        "may only be installed from the company's catalogue; updates are installed automatically every "
        "Tuesday night."),
    "board-minutes.txt": (
        "Minutes of the board meeting of 14 November. Present: the chair, the treasurer and three members. "
        "The treasurer presented the accounts: the association ended the year with a surplus of 38,000 "
        "kroner. The board approved the budget for next year, including a new roof for the clubhouse. "
        "The membership fee stays at 600 kroner. The summer party will be held on the last Saturday of "
        "June. Next meeting: 20 January."),
    "dog-care.md": (
        "# Caring for a puppy\n\nA puppy eats four small meals a day until it is three months old, then three "
        "until six months. It needs its vaccinations at 8, 12 and 16 weeks, and a worming treatment every "
        "month until six months of age. Walks should be short at first: five minutes per month of age, twice "
        "a day. Teach it to sit and come with treats and praise, never punishment."),
    "solar-panels.txt": (
        "Our solar panels. The roof has 18 panels with a total peak output of 7.2 kilowatts. In a normal year "
        "they produce about 6,500 kilowatt hours; most of it between April and September. Electricity we do "
        "not use ourselves is sold to the grid. The inverter in the basement shows a red light when there "
        "is a fault; restart it with the switch on its side. The panels should be inspected every five "
        "years; the warranty runs for 25 years."),
    "first-aid.txt": (
        "First aid basics. If someone is unconscious but breathing, put them in the recovery position and "
        "call 112. If they are not breathing, start chest compressions: 30 compressions, then 2 rescue "
        "breaths, and continue until help arrives or a defibrillator is ready. Cool a burn under lukewarm "
        "running water for at least 20 minutes. For a nosebleed, lean forward and pinch the soft part of "
        "the nose for ten minutes."),
    "tax-return-guide.txt": (
        "Your annual tax return. The preliminary assessment comes in November and the annual statement in "
        "March. Check your deductions: travel between home and work over 24 kilometres a day, union fees, "
        "and interest on loans. If you paid too little tax, the remainder is collected over the following "
        "year; if you paid too much, the money is paid out to your bank account in April. Corrections can "
        "be made online until 1 May."),
}


@dataclass(frozen=True)
class Question:
    text: str
    document: str
    by_meaning: bool = False  # shares none of its answer's content words


QUESTIONS: list[Question] = [
    Question("How much notice do I have to give to quit my job?", "employment-contract.txt"),
    Question("How many holiday days do I get?", "employment-contract.txt"),
    Question("When is my salary paid?", "employment-contract.txt"),
    Question("What is the monthly rent of the apartment?", "apartment-lease.txt"),
    Question("Can I keep a cat in the flat?", "apartment-lease.txt", by_meaning=True),
    Question("How big is the deposit?", "apartment-lease.txt"),
    Question("At what temperature should the bread bake?", "sourdough-recipe.md"),
    Question("How long does the dough rise?", "sourdough-recipe.md"),
    Question("How often should I oil the bike chain?", "bike-maintenance.md"),
    Question("What tyre pressure for a city bike?", "bike-maintenance.md"),
    Question("My brakes squeak, what can I do?", "bike-maintenance.md"),
    Question("When do I plant tulip bulbs?", "garden-calendar.html"),
    Question("When should apple trees be pruned?", "garden-calendar.html"),
    Question("Is skydiving covered by the travel insurance?", "travel-insurance.txt"),
    Question("What do I get if my flight is late?", "travel-insurance.txt"),
    Question("How long may a trip last and still be insured?", "travel-insurance.txt"),
    Question("How long must a password be?", "it-security-policy.txt"),
    Question("I lost my work laptop, who do I tell?", "it-security-policy.txt"),
    Question("What was decided about the membership fee?", "board-minutes.txt"),
    Question("When is the summer party?", "board-minutes.txt"),
    Question("How often should a puppy eat?", "dog-care.md"),
    Question("When does a young dog need its shots?", "dog-care.md", by_meaning=True),
    Question("How much electricity do the solar panels produce?", "solar-panels.txt"),
    Question("The inverter shows a red light, what now?", "solar-panels.txt"),
    Question("What should I do if someone stops breathing?", "first-aid.txt"),
    Question("How do I treat a burn?", "first-aid.txt"),
    Question("When do I get my tax refund?", "tax-return-guide.txt"),
    Question("Can I deduct my commute?", "tax-return-guide.txt", by_meaning=True),
    Question("What does the kitty for the clubhouse look like for next year?", "board-minutes.txt",
             by_meaning=True),
    Question("What is the pay for extra hours?", "employment-contract.txt", by_meaning=True),
    Question("Is my pooch allowed at home?", "apartment-lease.txt", by_meaning=True),
]
