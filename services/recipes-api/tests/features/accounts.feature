Feature: Accounts, sessions and ownership
  Cooks sign up and sign in to publish recipes; only a recipe's owner may change it; a signed-out
  session is dead at once; guessing passwords locks the account for a while. Every refusal is explained
  in the cook's language.

  Scenario Outline: Sign up, sign in, publish, edit, sign out, and be refused (<locale>)
    Given a running recipes service
    When I sign up as "<username>" with password "correct horse!"
    Then the response status is 201
    When I sign in as "<username>" with password "correct horse!"
    Then the response status is 200
    And I hold a bearer token and a session cookie
    When I create a recipe named "Bún chả" tagged "vietnamese" with ingredients "pork, rice noodles"
    Then the response status is 201
    When I rename the recipe to "Bún chả Hà Nội" with its current ETag
    Then the response status is 200
    When I sign out
    Then the response status is 204
    When I rename the recipe to "After sign-out" in "<locale>"
    Then the response is a "unauthorized" problem with status 401
    And the problem is in "<locale>" with the title "<title>"

    Examples:
      | locale | username | title                   |
      | en     | alice    | Authentication required |
      | vi     | binh     | Cần xác thực            |

  Scenario Outline: Someone else's recipe cannot be changed (<locale>)
    Given a running recipes service
    And I am signed in as "alice"
    When I create a recipe named "Cơm tấm" tagged "vietnamese" with ingredients "broken rice, pork chop"
    Then the response status is 201
    Given I am signed in as "bob"
    When I rename the recipe to "Bob's now" in "<locale>"
    Then the response is a "forbidden" problem with status 403
    And the problem is in "<locale>" with the title "<title>"

    Examples:
      | locale | title         |
      | en     | Forbidden     |
      | vi     | Bị từ chối    |

  Scenario Outline: Wrong passwords lock the account for a while (<locale>)
    Given a running recipes service
    And a cook "alice" has an account
    When I sign in as "alice" with a wrong password 5 times
    Then every attempt was refused with status 401
    When I sign in as "alice" with password "correct horse!" in "<locale>"
    Then the response is a "too_many_requests" problem with status 429
    And the problem is in "<locale>" with the title "<title>"
    And the response asks to retry after about 15 minutes

    Examples:
      | locale | title              |
      | en     | Too many requests  |
      | vi     | Quá nhiều yêu cầu  |

  Scenario Outline: A bad sign-up is explained rule by rule (<locale>)
    Given a running recipes service
    When I sign up in "<locale>" as "al1ce" with email "alice-at-example" and password "short"
    Then the response is a "validation_failed" problem with status 422
    And the problem explains "username" as "letters_only": "<letters_only>"
    And the problem explains "email" as "invalid_email": "<invalid_email>"

    Examples:
      | locale | letters_only                                   | invalid_email                  |
      | en     | may contain only the letters a to z and A to Z | must be a valid email address  |
      | vi     | chỉ được chứa các chữ cái từ a đến z và A đến Z | phải là địa chỉ email hợp lệ   |
